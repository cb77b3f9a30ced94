"""Accounts and access: users, organizations, repositories, personal access tokens, the token service."""
