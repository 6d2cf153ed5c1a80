"""Login, refresh and logout, the caller (`me`), personal access tokens, scopes."""
