"""Near-duplicate detection: MinHash over character 5-grams of the answer (Korean has no spaces to split
words reliably), LSH at Jaccard ≈ 0.9. Near-duplicates get a cluster id — the id of the first sample
seen in the cluster — and are flagged, never deleted. Exact duplicates are caught by the content hash.

    index = NearDuplicateIndex(threshold=0.9)
    cluster = index.add(sample_id, text)   # None, or the cluster id of the earlier near-duplicate
"""
from __future__ import annotations

import unicodedata

from datasketch import MinHash, MinHashLSH

NUM_PERM = 64


def shingles(text: str, k: int = 5) -> set[str]:
    t = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return {t[i:i + k] for i in range(max(1, len(t) - k + 1))}


def minhash(text: str) -> MinHash:
    m = MinHash(num_perm=NUM_PERM, seed=1)
    m.update_batch([s.encode() for s in shingles(text)])
    return m


class NearDuplicateIndex:
    def __init__(self, threshold: float = 0.9):
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self.cluster_of: dict[int, int] = {}

    def query(self, text: str) -> int | None:
        hits = self.lsh.query(minhash(text))
        return min(self.cluster_of[h] for h in hits) if hits else None

    def add(self, sample_id: int, text: str, cluster_id: int | None = None) -> int | None:
        m = minhash(text)
        hits = self.lsh.query(m)
        found = min(self.cluster_of[h] for h in hits) if hits else None
        self.lsh.insert(sample_id, m)
        self.cluster_of[sample_id] = cluster_id or found or sample_id
        return found
