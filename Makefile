# idlcm: local stack and checks. Scripts live in infra/; see infra/*.sh headers.
.PHONY: all run test bench lint bootstrap clean

all: test

# The whole stack on 127.0.0.1 (moto + cargo lambda watch + a demo integration);
# writes .idlcm/local.json. Ctrl-C stops everything.
run:
	infra/run.sh

# fmt, clippy, cargo test against moto, SCIM conformance, cfn-lint (what CI runs).
test:
	infra/test.sh

# Benchmarks against the emulator (activity listing with 100,000 jobs stored).
bench:
	infra/bench.sh

lint: bootstrap
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	.venv/tools/bin/cfn-lint template.yaml

bootstrap:
	infra/bootstrap.sh

clean:
	rm -rf .venv .idlcm target/idlcm-*
