#!/usr/bin/env bash
# Build an image, test it by running it, push it, and report the pushed digest.
# The CI workflow beside this file calls it; it runs the same on a laptop:
#   IMAGE_REF=localhost:5000/team/hello:dev examples/ci/build-test-push.sh
set -euo pipefail

: "${IMAGE_REF:?set IMAGE_REF, e.g. ghcr.io/OWNER/hello:1.0}"
CONTEXT=${CONTEXT:-examples/hello-python}    # build context (its Dockerfile is used)
EXPECT=${EXPECT:-Hello from}                 # the test: this text must be in the image's stdout
FORMAT=${FORMAT:-oci}                        # oci (standard image, runwasi) or wasm (CNCF artifact)
OUT=${OUT:-image.wasm}
BOXER=${BOXER:-boxer}
RESULT=${RESULT:-push.json}

echo "::group::build"
$BOXER build -t "$IMAGE_REF" "$CONTEXT" -o "$OUT"
echo "::endgroup::"

echo "::group::test"
# --json: one object with exit_code and stdout; a hung or greedy image fails the job.
$BOXER run --json --timeout 60 --memory 512m "$OUT" > run.json
python3 - "$EXPECT" <<'PY'
import json, sys
run = json.load(open("run.json"))
print(run["stdout"], end="")
if run["exit_code"] != 0 or sys.argv[1] not in run["stdout"]:
    sys.exit(f"test failed: exit code {run['exit_code']}, stdout {run['stdout']!r}, stderr {run['stderr']!r}")
PY
echo "::endgroup::"

echo "::group::push"
# shellcheck disable=SC2086  # BOXER_PUSH_FLAGS is a list of flags, e.g. "--insecure"
$BOXER push "$OUT" "$IMAGE_REF" --format "$FORMAT" --json ${BOXER_PUSH_FLAGS:-} > "$RESULT"
echo "::endgroup::"

read -r digest pinned < <(python3 - "$RESULT" <<'PY'
import json, sys
pushed = json.load(open(sys.argv[1]))
name, colon, tag = pushed["reference"].partition("@")[0].rpartition(":")
name = name if colon and "/" not in tag else pushed["reference"].partition("@")[0]
print(pushed["digest"], f"{name}@{pushed['digest']}")
PY
)
echo "pushed $pinned"
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "digest=$digest" >> "$GITHUB_OUTPUT"
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  echo "Pushed \`$IMAGE_REF\` as \`$digest\`" >> "$GITHUB_STEP_SUMMARY"
fi
