# idlcm: local stack and checks. Scripts live in infra/; see infra/*.sh headers.
.PHONY: all run test bench fuzz package lint bootstrap clean

all: test

# The whole stack on 127.0.0.1 (moto + cargo lambda watch + a demo integration);
# writes .idlcm/local.json. Ctrl-C stops everything.
run:
	infra/run.sh

# fmt, clippy, template checks, cargo test against moto, SCIM conformance, the Lambda event
# fixtures, the browser test, sam build (what CI runs).
test:
	infra/test.sh

# Benchmarks against the emulator: activity listing with 100,000 jobs stored; role-group
# rename answer time at 10, 1,000 and 10,000 members; listing at 20,000 users.
bench:
	infra/bench.sh

# Coverage-guided fuzzing (cargo fuzz), 10 minutes per target: filter, patch, resource,
# request (IDLCM_FUZZ_SECONDS, IDLCM_FUZZ_TARGETS). `make test` replays the corpus.
fuzz:
	infra/fuzz.sh

# sam build: release arm64 bootstrap artifacts of the three functions in .aws-sam/build.
package:
	infra/package.sh

lint: bootstrap
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	.venv/tools/bin/cfn-lint --append-rules cfn_lint_serverless.rules -t template.yaml
	SAM_CLI_TELEMETRY=0 .venv/tools/bin/sam validate --lint --region us-east-1

bootstrap:
	infra/bootstrap.sh

clean:
	rm -rf .venv .idlcm .aws-sam target/idlcm-*
