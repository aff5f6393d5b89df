#!/usr/bin/env bash
# Run every example in cano/examples and fail if one exits non-zero or hangs.
#
#   bash .ci/examples.sh              # all examples
#   bash .ci/examples.sh checkout ... # only these
#
# The examples are built once, with every feature on, and each binary then runs on its
# own with a time limit (EXAMPLE_TIMEOUT seconds, default 120). The examples that need
# no feature are also checked without features. The script also checks
# that each example opens with a `//!` header whose `cargo run` line names the example
# and exactly the features cano/Cargo.toml requires for it, so the line a reader copies
# from the header is the line that works.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

limit=${EXAMPLE_TIMEOUT:-120}
manifest=cano/Cargo.toml
logs=$(mktemp -d "${TMPDIR:-/tmp}/cano-examples.XXXXXX")

# The required-features of example $1 from the manifest, comma-separated ("" if none).
required_features() {
  awk -v name="$1" '
    /^\[\[example\]\]/ { in_ex = 1; found = 0; next }
    /^\[/              { in_ex = 0; next }
    in_ex && /^name[ \t]*=/ {
      n = $0; sub(/^name[ \t]*=[ \t]*"/, "", n); sub(/".*$/, "", n); found = (n == name); next
    }
    in_ex && found && /^required-features[ \t]*=/ {
      f = $0; sub(/^[^[]*\[/, "", f); sub(/\].*$/, "", f); gsub(/[" \t]/, "", f); print f; exit
    }
  ' "$manifest"
}

if (($#)); then
  names=("$@")
else
  names=()
  for file in cano/examples/*.rs; do
    names+=("$(basename "$file" .rs)")
  done
fi
if ((${#names[@]} == 0)); then
  echo "examples: no examples found in cano/examples" >&2
  exit 1
fi

failed=()

# Header check: a `//!` header with the exact run line.
for name in "${names[@]}"; do
  file=cano/examples/$name.rs
  if [[ ! -f $file ]]; then
    echo "examples: $file does not exist" >&2
    failed+=("$name (missing)")
    continue
  fi
  features=$(required_features "$name")
  expected="cargo run -p cano --example $name"
  [[ -n $features ]] && expected+=" --features ${features//,/ }"
  if ! head -n 1 "$file" | grep -q '^//!'; then
    echo "examples: $file does not start with a //! header" >&2
    failed+=("$name (no header)")
  elif ! grep -q "^//!.*\`$expected\`" "$file"; then
    echo "examples: the header of $file should give the run line \`$expected\`" >&2
    failed+=("$name (header run line)")
  fi
done

# An example that uses a feature-gated API must list the feature in required-features;
# without features cargo skips the gated examples and checks the rest.
printf '==> checking the examples without features (each needs only its required-features)\n'
if ! cargo check -p cano --examples; then
  echo "examples: an example without required-features does not compile without features;" \
    "add the feature it uses to its [[example]] entry in $manifest" >&2
  exit 1
fi

printf '==> building the examples (--features all)\n'
if ! cargo build -p cano --examples --features all; then
  echo "examples: the examples do not build" >&2
  exit 1
fi

bin_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin_dir=${bin_dir:-$root/target}/debug/examples

for name in "${names[@]}"; do
  [[ -x $bin_dir/$name ]] || continue
  log=$logs/$name.log
  start=$SECONDS
  # stdin from /dev/null: nothing may wait for a keypress; the run line of a header is
  # what a user types, but the built binary is the same program.
  timeout --kill-after=10 "$limit" "$bin_dir/$name" </dev/null >"$log" 2>&1
  status=$?
  took=$((SECONDS - start))
  if ((status == 0)); then
    printf '  ok    %-22s %3ss\n' "$name" "$took"
  else
    if ((status == 124 || status == 137)); then
      printf '  FAIL  %-22s timed out after %ss\n' "$name" "$limit"
    else
      printf '  FAIL  %-22s exit status %s after %ss\n' "$name" "$status" "$took"
    fi
    sed 's/^/        | /' "$log" | tail -n 40
    failed+=("$name")
  fi
done

if ((${#failed[@]})); then
  printf '\nexamples: %d problem(s): %s\n' "${#failed[@]}" "${failed[*]}" >&2
  printf 'full output of each run: %s\n' "$logs" >&2
  exit 1
fi
rm -rf "$logs"
printf '\nexamples: all %d ran and exited 0\n' "${#names[@]}"
