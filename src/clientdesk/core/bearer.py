"""Reading an `Authorization: Bearer <token>` header (RFC 6750), for every API that takes one."""


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization` header value `Bearer <token>` (the scheme in any case,
    one token, spaces around it ignored); "" when it names the Bearer scheme without exactly one
    token; None when it names another scheme, or none."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token or " " in token:
        return ""
    return token
