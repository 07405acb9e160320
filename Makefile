# The two commands a newcomer needs: `make run` and `make test`. Both bootstrap first.
SWIFT ?= swift
CONFIG ?= config/distilld.yaml

.PHONY: bootstrap build run test release-check soak chaos demo clean

bootstrap:
	@scripts/bootstrap

# The release binaries carry the Swift runtime and Foundation (--static-swift-stdlib), so that a
# server needs no Swift toolchain: deploy/README.md.
build: bootstrap
	$(SWIFT) build -c release --static-swift-stdlib

run: build
	.build/release/distilld --config $(CONFIG)

# One debug build of everything (the tests start the built distilld, teacher-sim and cachectl
# as real processes), then the whole suite one test at a time (about 8 minutes; in parallel on
# 2 cores, tests that wait on a loopback server or a deadline failed now and then), then the
# short reliability runs on the same build (a 60-s soak and 5 SIGKILLs with the fault checks:
# about 3 minutes together), then what a server gets (release-check: the release build, about
# 9 minutes on 2 cores). The layout and docs checks come first: they take a second.
test: bootstrap
	scripts/check-layout
	scripts/check-docs
	$(SWIFT) build --build-tests
	DISTILL_BIN_DIR="$$($(SWIFT) build --show-bin-path)" $(SWIFT) test --skip-build --no-parallel
	"$$($(SWIFT) build --show-bin-path)/distill-bench" soak --seconds 60
	"$$($(SWIFT) build --show-bin-path)/distill-bench" chaos --kills 5
	$(MAKE) release-check

# What a server gets: the release distilld and cachectl need nothing from the toolchain (ldd), and
# the shipped systemd unit runs them under a real systemd in a container without /opt/swift (root
# only: elsewhere deploy-check says why and passes).
release-check: build
	scripts/release-check
	DISTILL_BIN_DIR="$$($(SWIFT) build -c release --show-bin-path)" scripts/deploy-check

# The long reliability runs, on the release build: a 10-minute soak, and 50 SIGKILLs under load.
soak: build
	"$$($(SWIFT) build -c release --show-bin-path)/distill-bench" soak

chaos: build
	"$$($(SWIFT) build -c release --show-bin-path)/distill-bench" chaos --kills 50

# The replay benchmark on Banking77 with the soft-label teacher (docs/benchmarks.md, "Replay"):
# teacher-sim and distilld run as real processes on a fresh store; the summary is printed and the
# report written to var/reports/.
DATA ?= ../shared/data/banking77
demo: build
	.build/release/distill-bench replay --soft-jsonl $(DATA)/teacher_soft.jsonl

clean:
	$(SWIFT) package clean
