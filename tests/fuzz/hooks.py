"""Schemathesis hooks for hcp's API fuzzing (deploy/local/test.sh loads them with
SCHEMATHESIS_HOOKS=hooks and PYTHONPATH=tests/fuzz).

The `problem_json` check: every 4xx and 5xx answer is an RFC 9457 problem document
(`application/problem+json`) whose `status` equals the HTTP status and whose `type` is one of
hcp's stable problem types (`/problems/...`), with a `title`.
"""

import json

import schemathesis


@schemathesis.check
def problem_json(ctx, response, case):
    """Every error answer is application/problem+json with a stable type and the right status."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if not content_type.startswith("application/problem+json"):
        raise AssertionError(
            f"{response.status_code} answered with content-type {content_type!r}, not application/problem+json"
        )
    try:
        problem = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"{response.status_code}: the problem document is not JSON ({e})")
    if not isinstance(problem, dict):
        raise AssertionError(f"{response.status_code}: the problem document is not an object")
    if problem.get("status") != response.status_code:
        raise AssertionError(f"problem status {problem.get('status')!r} differs from HTTP {response.status_code}")
    if not str(problem.get("type", "")).startswith("/problems/"):
        raise AssertionError(f"problem type {problem.get('type')!r} is not a stable /problems/... type")
    if not problem.get("title"):
        raise AssertionError("problem without a title")
    return None
