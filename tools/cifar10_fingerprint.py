#!/usr/bin/env python3
"""The known answers of Cifar10.FingerprintKnownAnswers, from the description of
cifar10_fingerprint in layers/cifar10_reader.cpp, written apart from the C++ code.

The fingerprint is a contract: checkpoints record it, and `--resume` compares it with the
training set's. Run with no arguments; it prints the two values the test pins.
"""
MASK = (1 << 64) - 1


def splitmix64_finaliser(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def fingerprint(count: int, labels: bytes, images: bytes) -> str:
    h = 0xCBF29CE484222325  # FNV-1a's offset basis
    for part in (count.to_bytes(8, "little"), labels, images):
        for i in range(0, len(part), 8):  # little-endian words, the last one short
            word = int.from_bytes(part[i:i + 8], "little")
            h = ((h ^ splitmix64_finaliser(word)) * 0x100000001B3) & MASK
    return f"{splitmix64_finaliser(h):016x}"


if __name__ == "__main__":
    n = 3
    labels = bytes((i * 3 + 1) % 10 for i in range(n))
    images = bytes((i * 7 + 3) & 0xFF for i in range(n * 3072))
    print("3 images:", fingerprint(n, labels, images))
    print("empty:   ", fingerprint(0, b"", b""))
