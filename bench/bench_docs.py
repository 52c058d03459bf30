"""bench_docs - the sync benchmark's backlog, shared by bench/sync.py and its
reference clients, so every client sends the same data."""
import json


def item_id(i):
    return "i%06d" % i


def doc(i):
    """An item's JSON document, about 300 bytes."""
    return json.dumps({"n": i, "name": "item-%06d" % i, "kind": "sensor",
                       "temp": 21.5 + (i % 100) / 10, "tags": ["a", "b"], "ok": True,
                       "nested": {"x": i * 2, "y": "z" * 40}, "note": "n" * 135},
                      separators=(",", ":"))


def file_sizes(n):
    """n file sizes from 4 KiB to 4 MiB: eleven size classes 4 KiB * 2^k
    (k = 0..10), the count falling by sqrt(2) per class (2^(-k/2)), so most
    files are small and the bytes spread over all classes, like an
    appliance's documents, photos and logs.  With n = 500: 150 files of
    4 KiB, 106 of 8 KiB ... 6 of 2 MiB, 4 of 4 MiB; 58.2 MiB in all."""
    weights = [2 ** (-k / 2) for k in range(11)]
    total = sum(weights)
    counts = [int(n * w / total) for w in weights]
    k = 0
    while sum(counts) < n:  # the rounding remainder goes to the small classes
        counts[k % 11] += 1
        k += 1
    sizes = []
    for k, c in enumerate(counts):
        sizes += [4096 << k] * c
    # A fixed interleaving (not sorted by size), the same for every client.
    return [sizes[(i * 7919) % len(sizes)] for i in range(len(sizes))] if n else []
