"""Key and id text forms: hex, z-base32, and the hypercore-id-encoding rules.

A Hypercore key is 32 bytes. People see it as an *id*: the z-base32 (z32) text of the key,
52 lowercase characters, which is what ``core.id`` prints in JS and what Corestore, Hyperdrive
and Pear use. Older tools print 64 hex characters. :func:`decode_key` accepts every form the
JS ``hypercore-id-encoding`` package accepts, and nothing more, so an id that works here works
there and the other way round.

z32 reads the input as one big-endian bit string, cut into 5-bit groups from the top; the last
group is padded with zero bits. There is no ``=`` padding and only lowercase is valid.

The JS z32 decoder has a quirk for inputs whose length is not a multiple of 8 characters: the
number of bytes it returns for the last 1..7 characters is ``1,1,2,2,3,4,4`` (not simply
``floor(5r/8)``), with missing bits read as zero. :func:`z32_decode` reproduces it so both
sides agree on every string, not only on well-formed ids. Trailing pad bits are ignored, so
several 52-character strings decode to the same key; :func:`normalize` gives the one
canonical id.
"""

from __future__ import annotations

from hyperlobby.errors import InvalidKeyError

Z32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_Z32_REVERSE: dict[str, int] = {ch: i for i, ch in enumerate(Z32_ALPHABET)}
# Bytes the JS decoder emits for a trailing partial group of r characters (r = len % 8).
_TAIL_BYTES = (0, 1, 1, 2, 2, 3, 4, 4)
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

KEY_SIZE = 32
ID_LENGTH = 52
HEX_LENGTH = 64
PEAR_PREFIX = "pear://"

BytesLike = bytes | bytearray | memoryview


def hex_encode(data: BytesLike) -> str:
    """Lowercase hex, as JS ``b4a.toString(buf, 'hex')`` prints it."""
    return bytes(data).hex()


def hex_decode(text: str) -> bytes:
    """Strict hex: an even number of hex digits (either case), nothing else.

    Python's ``bytes.fromhex`` skips whitespace; JS stops at the first bad pair. Refusing both
    keeps a key from being silently shortened or reinterpreted.
    """
    if len(text) % 2 or not _HEX_DIGITS.issuperset(text):
        raise InvalidKeyError("not a hex string", value=text[:80])
    return bytes.fromhex(text)


def z32_encode(data: BytesLike) -> str:
    """z-base32 text of ``data`` (lowercase, no padding characters)."""
    raw = bytes(data)
    bits = len(raw) * 8
    if bits == 0:
        return ""
    groups = -(-bits // 5)
    value = int.from_bytes(raw, "big") << (groups * 5 - bits)
    return "".join(Z32_ALPHABET[(value >> (5 * (groups - 1 - i))) & 31] for i in range(groups))


def z32_decode(text: str) -> bytes:
    """Bytes of a z-base32 string, byte-for-byte what the JS ``z32.decode`` returns.

    Raises :class:`InvalidKeyError` on a character outside the alphabet (uppercase included).
    """
    value = 0
    for pos, ch in enumerate(text):
        digit = _Z32_REVERSE.get(ch)
        if digit is None:
            raise InvalidKeyError("invalid character in z-base32 input", character=ch, position=pos)
        value = (value << 5) | digit
    full, rest = divmod(len(text), 8)
    out_len = 5 * full + _TAIL_BYTES[rest]
    # Align the bit string on the output bytes: pad with zeros or drop the spare low bits.
    shift = out_len * 8 - len(text) * 5
    value = value << shift if shift >= 0 else value >> -shift
    return value.to_bytes(out_len, "big")


def encode_id(key: BytesLike) -> str:
    """The id of a 32-byte key: its z32 text (52 characters)."""
    if not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidKeyError("a key must be bytes", type=type(key).__name__)
    raw = bytes(key)
    if len(raw) != KEY_SIZE:
        raise InvalidKeyError("a key must be 32 bytes long", length=len(raw))
    return z32_encode(raw)


def decode_key(value: str | BytesLike) -> bytes:
    """A 32-byte key from any accepted form, with the hypercore-id-encoding rules.

    Accepted: 32 raw bytes; a 52-character z32 id; a 64-character hex string; either of the
    text forms behind a ``pear://`` prefix (anything from the first ``/`` after it is
    dropped). Anything else raises :class:`InvalidKeyError`.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) != KEY_SIZE:
            raise InvalidKeyError("a key must be 32 bytes long", length=len(raw))
        return raw
    if not isinstance(value, str):
        raise InvalidKeyError("invalid Hypercore key", type=type(value).__name__)
    text = value
    if text.startswith(PEAR_PREFIX):
        text = text[len(PEAR_PREFIX) :].split("/", 1)[0]
    if len(text) == ID_LENGTH:
        return z32_decode(text)
    if len(text) == HEX_LENGTH and _HEX_DIGITS.issuperset(text):
        return bytes.fromhex(text)
    raise InvalidKeyError("invalid Hypercore key", value=value[:80])


def is_valid(value: object) -> bool:
    """True if :func:`decode_key` accepts ``value``."""
    try:
        decode_key(value)  # type: ignore[arg-type]
    except InvalidKeyError:
        return False
    return True


def normalize(value: str | BytesLike) -> str:
    """The canonical id (z32) of any accepted key form."""
    return encode_id(decode_key(value))
