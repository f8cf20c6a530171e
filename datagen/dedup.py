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
# The highest threshold MinHashLSH accepts with NUM_PERM permutations: above it the optimal LSH split has fewer
# than 2 bands and datasketch refuses ("The number of bands are too small (b < 2)"). Pinned by a test.
MAX_THRESHOLD = 0.96


def check_threshold(threshold: float) -> float:
    """A near-duplicate threshold datasketch can index with, or ValueError saying which values work."""
    if not 0 < threshold <= MAX_THRESHOLD:
        raise ValueError(f"near_dup_threshold must be above 0 and at most {MAX_THRESHOLD} (got {threshold}): it is "
                         f"the answer similarity (MinHash Jaccard) from which samples count as near-duplicates, and "
                         f"MinHash with {NUM_PERM} permutations cannot index a threshold above {MAX_THRESHOLD}")
    return threshold


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
