"""The id in a URL (`<id:client_id>`): a UUID, handed to the view as `uuid.UUID`.

Django's `<uuid:…>` matches lower-case digits only; RFC 9562 reads a UUID's hex digits in either
case, and an integrator may store our ids upper-case (as SQL Server shows a `uniqueidentifier`).
Anything else does not match the route, so the API's catch-all answers 404 problem+json."""

import uuid

_HEX = "[0-9a-fA-F]"


class IdConverter:
    regex = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"

    def to_python(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_url(self, value: uuid.UUID | str) -> str:
        return str(value)
