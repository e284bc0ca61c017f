#!/usr/bin/env bash
# buf breaking (FILE rules) of the working tree's protos against main's.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=main
git rev-parse --verify -q "$ref" >/dev/null || ref=HEAD
if ! git rev-parse --verify -q "$ref" >/dev/null; then echo "buf breaking: no commit to compare with yet"; exit 0; fi
if ! git cat-file -e "$ref:buf.yaml" 2>/dev/null; then echo "buf breaking: $ref has no buf.yaml yet"; exit 0; fi
uv run buf breaking --against ".git#ref=$ref"
echo "buf breaking: no breaking change against $ref"
