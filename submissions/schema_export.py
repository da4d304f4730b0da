"""JSON Schema files of the contract, for users who write submissions by hand.

``speedrun verify --export-schema DIR`` (or ``python -m submissions.schema_export [DIR]``) writes
them; the copies in ``submissions/json_schema/`` are regenerated that way, and a test checks that
they are current.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from contract.protocol import JobLease, SubmissionAccepted
from contract.schema import SCHEMA_VERSION, RunConfig, RunResult, Submission, VerificationReport
from contract.tracks import TrackRules

SCHEMA_DIR = Path(__file__).resolve().parent / "json_schema"
MODELS: dict[str, type[BaseModel]] = {
    "run_config": RunConfig,
    "run_result": RunResult,
    "submission": Submission,
    "verification_report": VerificationReport,
    "track_rules": TrackRules,
    "submission_accepted": SubmissionAccepted,
    "job_lease": JobLease,
}


def schema_documents() -> dict[str, str]:
    """File name -> JSON text of each model's JSON Schema (validation mode, sorted keys)."""
    docs: dict[str, str] = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://speedrun.dev/schema/v{SCHEMA_VERSION}/{name}.schema.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        docs[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return docs


def export_json_schemas(out_dir: Path = SCHEMA_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_documents().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in export_json_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(p)
