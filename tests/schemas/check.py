"""The event schemas with a second, independent validator: Python's `jsonschema` (the most used one).

Every schema in schemas/ must be a valid Draft 2020-12 schema to it (its patterns compile in Python's
`re` as they do in ECMA-262), every sample event the Rust tests serialized (HCP_SCHEMA_SAMPLES, one
directory per schema) must validate, and an id with a control character must be refused as the
domain refuses it.

Usage: python check.py <schemas dir> <samples dir>
"""

import json
import pathlib
import re
import sys

from jsonschema import Draft202012Validator, FormatChecker


def main() -> int:
    schemas_dir, samples_dir = map(pathlib.Path, sys.argv[1:3])
    passed = failed = 0
    validators = {}

    def check(ok: bool, what: str) -> None:
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {what}", file=sys.stderr)

    for path in sorted(schemas_dir.glob("*.json")):
        schema = json.loads(path.read_text())
        try:
            Draft202012Validator.check_schema(schema, format_checker=FormatChecker())
            check(True, path.name)
        except Exception as e:  # the message names the failing keyword
            check(False, f"{path.name} is not a valid schema to Python jsonschema: {e}")
            continue
        for pattern in patterns(schema):
            try:
                re.compile(pattern)
            except re.error as e:
                check(False, f"{path.name}: pattern {pattern!r} does not compile in Python re: {e}")
        validator = Draft202012Validator(schema, format_checker=FormatChecker())
        samples = sorted((samples_dir / path.stem).glob("*.json"))
        for sample in samples:
            errors = [e.message for e in validator.iter_errors(json.loads(sample.read_text()))]
            check(not errors, f"{path.stem}/{sample.name}: {errors}")
        if path.stem in ("rating-submitted.v1", "rating-attributed.v1"):
            check(bool(samples), f"no sample events for {path.stem} in {samples_dir}")
        validators[path.stem] = validator
    # An attributed event carries the rating as submitted (its schema says so; it does not $ref it).
    submitted = validators.get("rating-submitted.v1")
    for sample in sorted((samples_dir / "rating-attributed.v1").glob("*.json")):
        rating = json.loads(sample.read_text())["rating"]
        check(submitted is not None and submitted.is_valid(rating), f"rating-attributed.v1/{sample.name}: rating")
    if submitted is not None:
        for bad in ("REC\u00071", "REC 1", "REC\u00851", ""):
            rating = {"rating_id": "019aa5f0-0000-7000-8000-000000000001", "channel": "window_evaluator",
                      "stage": "pickup", "service_record_no": bad, "grade": 4, "assess_number": 1,
                      "rated_at": "2026-11-20T08:00:00Z", "received_at": "2026-11-20T08:00:01Z"}
            check(not submitted.is_valid(rating), f"service_record_no {bad!r} was accepted")
        rating["service_record_no"] = "REC-1"
        check(submitted.is_valid(rating), "a valid rating was refused")
    print(f"schemas: {passed} passed, {failed} failed")
    return 1 if failed else 0


def patterns(node):
    """Every `pattern` string in a schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from patterns(item)


if __name__ == "__main__":
    sys.exit(main())
