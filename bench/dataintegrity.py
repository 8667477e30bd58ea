"""What a Data Integrity proof costs per credential, in process, next to the VC-JWT alone.

One credential shaped like ours (`builder.build_credential`: OB 3.0 contexts, an achievement
with alignment and tags, a hashed email identifier, a status entry), secured as issuance does
(`builder.secure`): JWT only (an ES256 issuer), and eddsa-rdfc-2022 proof + JWT (the same issuer
with Data Integrity). Then the stages of the proof apart: RDFC-1.0 canonicalisation of the
document and of the proof configuration (warm contexts), the Ed25519 signature, and verifying
the proof (`data_integrity.verify_proof`: canonicalise again + Ed25519 verify), next to verifying
the VC-JWT (`jose.verify`). Milliseconds per credential, median of rounds; no database, no HTTP
(bulk issuance's throughput with the proof is the `bulk` section's, on PostgreSQL).

`python -m bench.run dataintegrity` (part of `make bench`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from app.core import data_integrity, jose
from app.core.keys import SigningAlgorithm
from app.credentials import builder
from app.issuers.service import IssuerSigner, ProofSigner

QUICK_ARGV = ["--rounds", "3", "--count", "50"]
DID = "did:web:bench.example:issuers:bench"


def credential(n: int) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return builder.build_credential(
        credential_id=f"https://bench.example/credentials/{n:08d}",
        issuer_profile={
            "id": DID,
            "type": ["Profile"],
            "name": "Bench Academy",
            "url": "https://bench.example",
        },
        achievement={
            "id": "https://bench.example/achievements/sql",
            "type": ["Achievement"],
            "name": "SQL for Analysts",
            "description": "Writes correct, efficient SQL for reporting.",
            "criteria": {"narrative": "Passed a proctored practical exam."},
            "achievementType": "MicroCredential",
            "alignment": [
                {
                    "type": ["Alignment"],
                    "targetName": "Data Scientists",
                    "targetUrl": "https://www.onetonline.org/link/summary/15-2051.00",
                    "targetFramework": "O*NET-SOC",
                    "targetCode": "15-2051.00",
                }
            ],
            "tag": ["SQL", "data visualisation"],
        },
        recipient=builder.Recipient(
            subject_id=f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
            email_hash=builder.identity_hash(f"learner{n}@example.com", "salt"),
            salt="salt",
            name=f"Learner {n}",
        ),
        valid_from=now,
        valid_until=None,
        awarded=now,
        credential_status={
            "id": f"https://bench.example/status/bench/revocation/1#{n}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(n),
            "statusListCredential": "https://bench.example/status/bench/revocation/1",
        },
    )


def per_credential_ms(work: Callable[[int], object], count: int, rounds: int) -> float:
    """Median over rounds of the mean milliseconds per call (one warm-up call first)."""
    work(0)
    samples = []
    for r in range(rounds):
        start = time.perf_counter()
        for n in range(count):
            work(r * count + n + 1)
        samples.append((time.perf_counter() - start) * 1000 / count)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.dataintegrity")
    p.add_argument("--count", type=int, default=200, help="credentials per round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    jwt_key = ec.generate_private_key(ec.SECP256R1())
    proof_key = ed25519.Ed25519PrivateKey.generate()
    jwt_only = IssuerSigner(
        did=DID,
        kid=f"{DID}#jwt",
        algorithm=SigningAlgorithm.ES256,
        key=jwt_key,
        signing_key_id=None,  # type: ignore[arg-type]  # not stored: nothing refers to it here
    )
    both = IssuerSigner(
        did=DID,
        kid=f"{DID}#jwt",
        algorithm=SigningAlgorithm.ES256,
        key=jwt_key,
        signing_key_id=None,  # type: ignore[arg-type]
        proof=ProofSigner(verification_method=f"{DID}#di", key=proof_key),
    )
    created = datetime(2026, 1, 1, tzinfo=UTC)
    loader = builder.CONTEXTS
    documents = [credential(n) for n in range(args.count * args.rounds + 1)]
    signed = [builder.secure(d, signer=both, created=created) for d in documents[:2]]
    secured_doc, token = signed[0]
    proof = secured_doc["proof"]
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    parts = data_integrity.stages(documents[0], config, loader=loader)
    public = proof_key.public_key()
    jwt_public = jwt_key.public_key()

    figures = {
        "issue, VC-JWT only (ES256)": per_credential_ms(
            lambda n: builder.secure(documents[n], signer=jwt_only, created=created),
            args.count,
            args.rounds,
        ),
        "issue, eddsa-rdfc-2022 proof + VC-JWT": per_credential_ms(
            lambda n: builder.secure(documents[n], signer=both, created=created),
            args.count,
            args.rounds,
        ),
        "  canonicalise document + proof config": per_credential_ms(
            lambda n: data_integrity.stages(documents[n], config, loader=loader),
            args.count,
            args.rounds,
        ),
        "  Ed25519 signature": per_credential_ms(
            lambda n: proof_key.sign(parts.hash_data), args.count, args.rounds
        ),
        "verify, VC-JWT (ES256)": per_credential_ms(
            lambda n: jose.verify(token, jwt_public), args.count, args.rounds
        ),
        "verify, eddsa-rdfc-2022 proof": per_credential_ms(
            lambda n: data_integrity.verify_proof(secured_doc, proof, key=public, loader=loader),
            args.count,
            args.rounds,
        ),
    }
    print(
        f"per credential, in process, median of {args.rounds} rounds of {args.count} "
        f"(canonical document {len(parts.canonical_document.splitlines())} N-Quads):"
    )
    for name, ms in figures.items():
        print(f"  {name:<42} {ms:8.2f} ms")
    extra = figures["issue, eddsa-rdfc-2022 proof + VC-JWT"] - figures["issue, VC-JWT only (ES256)"]
    print(f"  {'the proof adds to issuing':<42} {extra:8.2f} ms")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
