"""Bytes a protobuf parser keeps but no message of ours knows: how a client
pads a frame with fields the server never reads."""


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def unknown_field(size: int, number: int = 111) -> bytes:
    """A length-delimited field `number`, `size` bytes long."""
    return _varint(number << 3 | 2) + _varint(size) + b"x" * size
