"""Portal links: an admin's customer manages one group's webhooks through a link."""
