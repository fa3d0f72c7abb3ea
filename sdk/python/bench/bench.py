"""Benchmarks of the Python SDK's hot paths (never asserted by tests).

    .venv/bin/python sdk/python/bench/bench.py [--batches N] [--size N]

Each figure is the median over batches of the mean time per operation in a
batch (time.perf_counter), so a noisy neighbour spoils a batch, not the
median. Compared in the same process:

- cached chain verification (the same bearer token again: cache hit,
  expiry and revocation of the token and every ancestor checked);
- first verification (the cache off: strict JWS parse, one Ed25519
  verification, claims, chain structure, scope grammar, claim checks,
  revocation) against one raw Ed25519 verification with `cryptography`;
- making a DPoP proof against one raw signature with `cryptography`
  (Ed25519 and ES256);
- a DPoP-bound request: cached chain plus the proof's verification.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mandate_auth import Key, RevocationSet, Verifier
from mandate_auth._b64 import b64decode, b64encode

ISSUER, AUDIENCE, PUBLIC = "https://mandate.example", "https://orders.example", "https://orders.example"
NOW = 1_800_000_000


def token(key: Key, **over: object) -> str:
    claims = {
        "iss": ISSUER, "sub": "orchestrator", "sub_iss": ISSUER, "aud": [AUDIENCE], "client_id": "db-agent",
        "scope": "db:read:orders db:read:customers tools:search", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 300,
        "jti": "0Q8wO9CCmMlJR3gjf3r7fM6ZMHOgI0", "act": {"sub": "db-agent", "act": {"sub": "researcher"}},
        "lineage": ["0Q8wO9C6qffvyKoKweOVmBX985L9oW", "0Q8wO9C9xYvL2kq8fj3mW0aQpZ1bN7"],
    }
    claims.update(over)
    header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    si = b64encode(json.dumps(header, separators=(",", ":")).encode()) + "." + b64encode(json.dumps(claims, separators=(",", ":")).encode())
    return si + "." + b64encode(key.sign(si.encode()))


def measure(fns: dict[str, tuple[Callable[[], object], int]], batches: int) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Interleaved batches: each batch runs every function its number of
    times, in turn, so a noisy neighbour slows all of them alike. Returns the
    median time per operation of each, and the per-batch times."""
    for fn, n in fns.values():  # warm up
        for _ in range(n):
            fn()
    rows: list[dict[str, float]] = []
    for _ in range(batches):
        row = {}
        for name, (fn, n) in fns.items():
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            row[name] = (time.perf_counter() - t0) / n
        rows.append(row)
    return {name: statistics.median(r[name] for r in rows) for name in fns}, rows


def ratio(rows: list[dict[str, float]], a: str, b: str) -> float:
    """The median over batches of a's time over b's, measured side by side."""
    return statistics.median(r[a] / r[b] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--size", type=int, default=500)
    a = ap.parse_args()

    issuer = Key.generate("EdDSA")
    holder = Key.generate("EdDSA")
    holder_es = Key.generate("ES256")
    revs = RevocationSet([f"revoked-{i}" for i in range(1000)])
    clock = lambda: float(NOW)  # noqa: E731
    cached = Verifier(issuer=ISSUER, audience=AUDIENCE, keys=issuer.public_jwks(), revocations=revs, now=clock, public_url=PUBLIC)
    cold = Verifier(issuer=ISSUER, audience=AUDIENCE, keys=issuer.public_jwks(), revocations=revs, now=clock, cache_size=-1)
    t = token(issuer)
    bound = token(issuer, cnf={"jkt": holder.jkt}, jti="bound-jti")

    si, _, sig = t.rpartition(".")
    si_b, sig_b = si.encode(), b64decode(sig)
    pub = issuer._priv.public_key()  # noqa: SLF001 (the same key, raw)
    es_priv = ec.generate_private_key(ec.SECP256R1())
    proof_input = b"x" * 180  # about a proof's signing input

    cached.verify(t)
    url = PUBLIC + "/orders"
    cached.verify_dpop(bound, holder.proof("GET", url, access_token=bound, now=NOW), "GET", url)
    n = a.size
    proofs = iter([holder.proof("GET", url, access_token=bound, now=NOW) for _ in range(n * (a.batches + 2))])
    results, rows = measure({
        "raw Ed25519 verify (cryptography)": (lambda: pub.verify(sig_b, si_b), n),
        "first verification (no cache)": (lambda: cold.verify(t), n),
        "cached chain verification": (lambda: cached.verify(t), n * 10),
        "raw Ed25519 sign (cryptography)": (lambda: issuer._priv.sign(proof_input), n),  # noqa: SLF001
        "DPoP proof, Ed25519": (lambda: holder.proof("GET", url, access_token=bound, now=NOW), n),
        "raw ES256 sign (cryptography)": (lambda: es_priv.sign(proof_input, ec.ECDSA(hashes.SHA256())), n),
        "DPoP proof, ES256": (lambda: holder_es.proof("GET", url, access_token=bound, now=NOW), n),
        "DPoP request: cached chain + proof verification": (lambda: cached.verify_dpop(bound, next(proofs), "GET", url), n),
    }, a.batches)

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# {platform.python_implementation()} {platform.python_version()}, {cpu}, {os.cpu_count()} cores; "
          f"medians of {a.batches} batches of {a.size} (cached: {a.size * 10})")
    for name, v in results.items():
        print(f"{name:52s} {v * 1e6:9.2f} µs")
    print("# ratios: medians over batches of the two measured side by side")
    print(f"{'first verification / raw Ed25519 verify':52s} {ratio(rows, 'first verification (no cache)', 'raw Ed25519 verify (cryptography)'):9.2f} ×  (target ≤ 1.5)")
    print(f"{'DPoP proof Ed25519 / raw Ed25519 sign':52s} {ratio(rows, 'DPoP proof, Ed25519', 'raw Ed25519 sign (cryptography)'):9.2f} ×  (target ≤ 2)")
    print(f"{'DPoP proof ES256 / raw ES256 sign':52s} {ratio(rows, 'DPoP proof, ES256', 'raw ES256 sign (cryptography)'):9.2f} ×  (target ≤ 2)")
    print(f"{'cached chain verification':52s} {results['cached chain verification'] * 1e6:9.2f} µs (target ≤ 20)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
