"""The composition root and the one after-commit hook."""

from __future__ import annotations

from sqlalchemy import text

from vsense.components import Components
from vsense.db import on_commit, session_scope


async def test_after_commit_work_runs_once_per_key_and_only_after_a_commit(
    state: Components,
) -> None:
    ran: list[str] = []
    async with session_scope(state.sessionmaker) as session:
        assert on_commit(session, "wake", lambda: ran.append("first"))
        assert not on_commit(session, "wake", lambda: ran.append("second"))
        on_commit(session, "other", lambda: ran.append("other"))
        assert ran == []  # nothing before the commit
    assert ran == ["first", "other"]

    ran.clear()
    async with state.sessionmaker() as session:
        await session.execute(text("SELECT 1"))  # work is asked for inside a transaction
        on_commit(session, "wake", lambda: ran.append("rolled back"))
        await session.rollback()
        await session.commit()  # a later commit of the same session runs nothing
    assert ran == []


def test_every_part_a_route_asks_for_is_of_its_type(state: Components) -> None:
    for kind, part in state.route_parts().items():
        if kind.__name__ == "DispatchParts":  # a protocol: the parts themselves satisfy it
            assert part is state
        else:
            assert isinstance(part, kind)
