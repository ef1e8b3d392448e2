"""The portal's fixtures, for tests of messages that clients answer."""

from tests.portal.conftest import integration, integration_api, portal_for  # noqa: F401
