"""A verifier key whose base64 part contains "+" (about half of all keys) still parses."""

import itertools

from clientdesk.audit.signing import Verifier, parse_vkey


def test_keys_with_plus_and_slash_in_their_base64_round_trip():
    seen_plus = False
    for fill in itertools.chain(range(256), [0xFB, 0xFF]):
        verifier = Verifier("clientdesk.test/audit", bytes([fill]) * 32)
        seen_plus |= "+" in verifier.vkey.split("+", 2)[2]
        parsed = parse_vkey(verifier.vkey)
        assert (parsed.name, parsed.public_key) == (verifier.name, verifier.public_key)
    assert seen_plus
