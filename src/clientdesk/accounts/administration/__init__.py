"""The Administration area (`/administration/`): staff users, API tokens and roles, for
administrators (`accounts.permissions.ADMINISTER`). Every change goes through the accounts
services, which record it in the audit ledger."""
