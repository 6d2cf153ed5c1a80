"""Users of an organization (admin-managed)."""
