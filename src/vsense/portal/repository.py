"""All SQL of portal links, and the one rule of what a link reaches: the devices of its
group, and the webhooks of those devices, in its organization."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.models import Device, Group, PortalLink, Webhook


async def get_group(session: AsyncSession, organization_id: int, group_id: int) -> Group | None:
    group: Group | None = await session.scalar(
        select(Group).where(Group.organization_id == organization_id, Group.id == group_id)
    )
    return group


async def add_link(session: AsyncSession, link: PortalLink) -> None:
    session.add(link)
    await session.flush()


async def list_links(
    session: AsyncSession, organization_id: int, *, offset: int, limit: int
) -> tuple[list[tuple[PortalLink, str]], int]:
    """A page of the organization's links with their group's name, newest first."""
    where = PortalLink.organization_id == organization_id
    total = await session.scalar(select(func.count()).select_from(PortalLink).where(where))
    rows = await session.execute(
        select(PortalLink, Group.name)
        .join(Group, Group.id == PortalLink.group_id)
        .where(where)
        .order_by(PortalLink.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [(link, name) for link, name in rows], int(total or 0)


async def get_link(
    session: AsyncSession, organization_id: int, link_id: int
) -> tuple[PortalLink, str] | None:
    row = (
        await session.execute(
            select(PortalLink, Group.name)
            .join(Group, Group.id == PortalLink.group_id)
            .where(PortalLink.organization_id == organization_id, PortalLink.id == link_id)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def open_link(
    session: AsyncSession, token_hash: str, now: datetime
) -> tuple[PortalLink, str] | None:
    """The link of a token's hash, with its group's name, if it is neither expired nor
    revoked."""
    row = (
        await session.execute(
            select(PortalLink, Group.name)
            .join(Group, Group.id == PortalLink.group_id)
            .where(
                PortalLink.token_hash == token_hash,
                PortalLink.revoked_at.is_(None),
                PortalLink.expires_at > now,
            )
        )
    ).first()
    return None if row is None else (row[0], row[1])


def _in_group(organization_id: int, group_id: int) -> Any:
    return select(Device.uuid).where(
        Device.organization_id == organization_id, Device.group_id == group_id
    )


async def group_devices(
    session: AsyncSession, organization_id: int, group_id: int
) -> Sequence[tuple[uuid.UUID, str]]:
    """The group's devices, by name."""
    rows = await session.execute(
        select(Device.uuid, Device.name)
        .where(Device.organization_id == organization_id, Device.group_id == group_id)
        .order_by(Device.name, Device.uuid)
    )
    return [(uuid.UUID(str(u)), name) for u, name in rows]


async def device_in_group(
    session: AsyncSession, organization_id: int, group_id: int, device: uuid.UUID
) -> bool:
    found = await session.scalar(
        select(Device.uuid).where(
            Device.uuid == device,
            Device.organization_id == organization_id,
            Device.group_id == group_id,
        )
    )
    return found is not None


async def webhook_in_group(
    session: AsyncSession, organization_id: int, group_id: int, webhook_id: int
) -> bool:
    found = await session.scalar(
        select(Webhook.id).where(
            Webhook.id == webhook_id,
            Webhook.organization_id == organization_id,
            Webhook.device_uuid.in_(_in_group(organization_id, group_id)),
        )
    )
    return found is not None
