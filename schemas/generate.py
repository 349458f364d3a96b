"""Write ``json/<Event>.schema.json`` for every event class: ``python -m driftline.schemas.generate``."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from driftline.schemas import EVENT_TYPES

SCHEMA_DIR = Path(__file__).with_name("json")


def json_schema(event_type: type[BaseModel]) -> dict:
    schema = event_type.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{event_type.__name__}.schema.json",
            **schema}


def schema_text(event_type: type[BaseModel]) -> str:
    return json.dumps(json_schema(event_type), indent=2, sort_keys=True) + "\n"


def schema_path(event_type: type[BaseModel]) -> Path:
    return SCHEMA_DIR / f"{event_type.__name__}.schema.json"


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for event_type in EVENT_TYPES:
        schema_path(event_type).write_text(schema_text(event_type))
        print(f"wrote {schema_path(event_type)}")


if __name__ == "__main__":
    main()
