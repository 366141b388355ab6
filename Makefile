# SPDX-License-Identifier: MIT
# A thin front door to the Meson build. `make demo` and `make check` each
# install what they need (as root) and build before they run.
#
#   make            build (build/)
#   make demo       gmvm runs its guest step by step (a KVM monitor whose
#                   guest lives in guestmem), then the tour of the library
#   make demo-linux Debian's Linux kernel under QEMU does block I/O on a
#                   vhost-user-blk disk served by gm-vhost-blk
#                   (DEMO_BACKEND=qsd: by qemu-storage-daemon instead)
#   make demo-migrate that guest, doing disk I/O on gm-vhost-blk, is
#                   live-migrated to a second QEMU process, pre-copy
#                   then post-copy
#   make check      the whole test suite: normal, ASan+UBSan, 32-bit x86,
#                   32-bit ARM (armhf, under qemu-user), TSan (concurrency
#                   tests), valgrind (unit tests), every fuzz target for
#                   FUZZ_CHECK_TIME seconds (30) from its seeds, and the
#                   demo-linux run (suite 'linux', once), and the Debian
#                   packages built, installed and used (`make deb`, once)
#   make coverage   build with gcov (build-coverage/), run every suite and
#                   print line and branch coverage per file (gcovr), with
#                   an HTML report in build-coverage/coverage/
#   make bench      build with -O2 and run the benchmarks (BENCH_PIN=CPU:
#                   datapath and dirty on that CPU only, for before/after)
#   make bench-vhost-blk  gm-vhost-blk against qemu-storage-daemon, serving
#                   the demo-linux guest (by hand: a few minutes, under TCG)
#   make deb        build the Debian packages (debian/) in a scratch copy
#                   (build/tests/deb/work/), lint them, install them (as
#                   root) and build a program against them with pkg-config
#   make abi-update take the ABI baseline (abi/libguestmem.abi) anew from
#                   the normal build: after adding functions, or after an
#                   incompatible change together with a new soversion
#                   (CONTRIBUTING.md); the test 'abi' compares against it
#   make fuzz       build the libFuzzer targets with clang and fuzz each
#                   (memory data path, space vs a model, snapshots, virtqueues,
#                   gm-vhost-blk's vhost-user server) for FUZZ_TIME seconds (60)
#   make fuzz-long  fuzz each target for FUZZ_RUNS executions (10^7) in a
#                   sanitizer-free build, then replay what it kept under ASan
#                   (scripts/fuzz-long.sh; hours on a 2-core machine)

SANITIZE_UB := -Dc_args=-fno-sanitize-recover=all -Dc_link_args=-fno-sanitize-recover=all

FORCE:
.PHONY: FORCE all deps demo demo-linux demo-migrate bench-vhost-blk check check-normal check-asan check-i386 check-armhf check-tsan check-valgrind check-fuzz check-linux check-deb deb abi-update coverage bench fuzz fuzz-long clean

all: build/build.ninja
	ninja -C build

deps:
	@scripts/deps.sh base

build/build.ninja: | deps
	meson setup build

build-asan/build.ninja: | deps
	meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false $(SANITIZE_UB)

build-tsan/build.ninja: | deps
	meson setup build-tsan -Db_sanitize=thread -Db_lundef=false

# Native where this host's kernel runs 32-bit x86 programs, otherwise under
# qemu-user (scripts/i386-mode.sh decides, GM_I386_MODE forces). The mode is
# kept in build-i386/gm-i386-mode; a build set up for the other mode is set
# up again.
I386_MODE_FILE := build-i386/gm-i386-mode
build-i386/build.ninja: FORCE
	@scripts/deps.sh base i386
	@mode=$$(scripts/i386-mode.sh) || exit 1; \
	if [ -f $@ ] && [ "$$(cat $(I386_MODE_FILE) 2>/dev/null)" = "$$mode" ]; then exit 0; fi; \
	rm -rf build-i386; \
	echo "i386: this host runs 32-bit x86 programs: $$mode"; \
	if [ "$$mode" = native ]; then cross="--cross-file cross/i386.txt"; \
	else cross="--cross-file cross/i386.txt --cross-file cross/i386-qemu.txt"; fi; \
	meson setup build-i386 $$cross && echo "$$mode" > $(I386_MODE_FILE)

build-armhf/build.ninja:
	@scripts/deps.sh base armhf
	meson setup build-armhf --cross-file cross/armhf.txt

build-release/build.ninja: | deps
	meson setup build-release -Dbuildtype=release -Dtests=disabled

build-fuzz/build.ninja: | deps
	CC=clang meson setup build-fuzz -Dfuzz=enabled -Dtests=disabled

demo: all
	@st=0; ./build/examples/gmvm/gmvm || st=$$?; \
	if [ $$st -eq 3 ]; then echo "demo: KVM is not usable here, so no gmvm guest; the library tour instead:"; \
	elif [ $$st -ne 0 ]; then exit $$st; fi; \
	echo; ./build/examples/tour/gm-tour

# The back end serving the guest's disk: gm (gm-vhost-blk, built here) or
# qsd (QEMU's qemu-storage-daemon, the baseline bench-vhost-blk compares to).
DEMO_BACKEND ?= gm
demo-linux: all
	scripts/demo-linux.sh --install --backend $(DEMO_BACKEND) \
		--gm-vhost-blk build/tools/gm-vhost-blk/gm-vhost-blk

demo-migrate: all
	@scripts/deps.sh demo-linux || echo "demo-migrate: could not install the demo-linux packages"
	scripts/demo-migrate.sh --gm-vhost-blk build/tools/gm-vhost-blk/gm-vhost-blk
	scripts/demo-migrate.sh --postcopy --gm-vhost-blk build/tools/gm-vhost-blk/gm-vhost-blk

check:
	@scripts/deps.sh base i386 armhf package
	@rm -f build*/meson-logs/testlog*.json
	@st=0; \
	$(MAKE) --no-print-directory check-normal || st=1; \
	$(MAKE) --no-print-directory check-asan || st=1; \
	$(MAKE) --no-print-directory check-i386 || st=1; \
	$(MAKE) --no-print-directory check-armhf || st=1; \
	$(MAKE) --no-print-directory check-tsan || st=1; \
	$(MAKE) --no-print-directory check-valgrind || st=1; \
	$(MAKE) --no-print-directory check-fuzz || st=1; \
	$(MAKE) --no-print-directory check-linux || st=1; \
	$(MAKE) --no-print-directory check-deb || st=1; \
	echo; echo "== summary"; \
	scripts/summary.py normal:build/meson-logs/testlog.json \
		asan+ubsan:build-asan/meson-logs/testlog.json \
		"i386 ($$(cat $(I386_MODE_FILE) 2>/dev/null || echo not set up))":build-i386/meson-logs/testlog.json \
		armhf:build-armhf/meson-logs/testlog.json \
		tsan:build-tsan/meson-logs/testlog.json \
		valgrind:build/meson-logs/testlog-valgrind.json \
		fuzz:build-fuzz/meson-logs/testlog.json \
		linux:build/meson-logs/testlog-linux.json \
		deb:build/meson-logs/testlog-deb.json || st=1; \
	exit $$st

check-normal: build/build.ninja
	@echo "== normal build"
	meson test -C build --no-suite linux --no-suite deb --print-errorlogs

check-asan: build-asan/build.ninja
	@echo "== ASan+UBSan build"
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		meson test -C build-asan --no-suite linux --no-suite deb --print-errorlogs

check-i386: build-i386/build.ninja
	@echo "== 32-bit (i386) build, $$(cat $(I386_MODE_FILE))"
	meson test -C build-i386 --no-suite linux --print-errorlogs

# The 32-bit ARM host: cross-built with clang, run under qemu-arm-static
# (the exe_wrapper of cross/armhf.txt). What qemu-user cannot emulate
# (smaps/madvise/MAP_POPULATE, userfaultfd, MSG_CTRUNC) skips with the
# reason; KVM and gmvm are x86-only (meson.build).
check-armhf: build-armhf/build.ninja
	@echo "== 32-bit ARM (armhf) build, under qemu-user"
	meson test -C build-armhf --no-suite linux --print-errorlogs

# The stress soaks and the unit tests that run threads (suite tsan,
# tests/meson.build). A race fails the check; tests/tsan.supp holds the
# few reports TSan cannot get right, each with its reason.
check-tsan: build-tsan/build.ninja
	@echo "== TSan build (concurrency tests)"
	TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" \
		meson test -C build-tsan --suite stress --suite tsan --print-errorlogs

check-valgrind: build/build.ninja
	@echo "== valgrind (unit tests)"
	meson test -C build --setup valgrind --suite unit --no-suite slow --print-errorlogs

# Each libFuzzer target (clang, ASan) for FUZZ_CHECK_TIME seconds from its
# seed corpus (scripts/fuzz-run.sh): a crash, leak or timeout fails the
# check and the input is kept in build-fuzz/. `make fuzz` fuzzes longer.
FUZZ_CHECK_TIME ?= 30
check-fuzz: build-fuzz/build.ninja
	@echo "== fuzz targets, $(FUZZ_CHECK_TIME) s each"
	GM_FUZZ_TIME=$(FUZZ_CHECK_TIME) meson test -C build-fuzz --suite fuzz --print-errorlogs

# The demo-linux guest, once (QEMU under TCG here): skipped, with the
# reason, when QEMU or the kernel cannot be installed.
check-linux: build/build.ninja
	@echo "== demo-linux (QEMU + Linux guest)"
	@scripts/deps.sh demo-linux || echo "check-linux: demo-linux packages missing; the test will skip"
	meson test -C build --suite linux --logbase testlog-linux --print-errorlogs

# The Debian packages, once: built in a scratch copy, linted, installed
# (skipped, with the reason, when not root) and used by a program built
# with pkg-config alone (scripts/deb.sh). About 15 s here, plus the wait
# for the dpkg lock when another install holds it.
check-deb: build/build.ninja
	@echo "== Debian packages (build, install, pkg-config consumer)"
	@scripts/deps.sh base package
	meson test -C build --suite deb --logbase testlog-deb --print-errorlogs

deb: check-deb

# The baseline of the test 'abi': only on purpose (CONTRIBUTING.md).
abi-update: build/build.ninja
	@scripts/deps.sh base package
	ninja -C build
	scripts/abi.sh update build/libguestmem.so abi/libguestmem.abi include/guestmem build/include/guestmem

build-coverage/build.ninja:
	@scripts/deps.sh base coverage
	meson setup build-coverage -Db_coverage=true

# Every suite, the demo-linux run included (about 20 s here; skipped, with
# the reason, when QEMU or the kernel cannot be installed), from zeroed
# counters; the figures and the targets of issue 17 (printed, not enforced)
# come from scripts/coverage.py. A failing test fails the target after the
# tables are printed.
coverage: build-coverage/build.ninja
	@scripts/deps.sh base coverage
	@scripts/deps.sh demo-linux || echo "coverage: demo-linux packages missing; the linux test will skip"
	ninja -C build-coverage
	find build-coverage -name "*.gcda" -delete
	@st=0; meson test -C build-coverage --no-suite deb --print-errorlogs || st=1; \
	scripts/coverage.py build-coverage || st=1; \
	exit $$st

bench: build-release/build.ninja
	ninja -C build-release
	./build-release/bench/gm-bench-datapath $(if $(BENCH_PIN),--pin $(BENCH_PIN))
	./build-release/bench/gm-bench-space
	./build-release/bench/gm-bench-dirty $(if $(BENCH_PIN),--pin $(BENCH_PIN))
	./build-release/bench/gm-bench-gmvm

bench-vhost-blk: build-release/build.ninja
	ninja -C build-release
	@scripts/deps.sh demo-linux
	bench/vhost-blk.sh --gm-vhost-blk build-release/tools/gm-vhost-blk/gm-vhost-blk

# New inputs go to build-fuzz/corpus-<target>; fuzz/corpus/<target> holds the seeds.
FUZZ_TIME ?= 60
fuzz: build-fuzz/build.ninja
	ninja -C build-fuzz fuzz/fuzz_memory
	mkdir -p build-fuzz/corpus-memory
	./build-fuzz/fuzz/fuzz_memory -max_total_time=$(FUZZ_TIME) build-fuzz/corpus-memory fuzz/corpus/memory
	ninja -C build-fuzz fuzz/fuzz_space_diff
	mkdir -p build-fuzz/corpus-space-diff
	./build-fuzz/fuzz/fuzz_space_diff -max_total_time=$(FUZZ_TIME) build-fuzz/corpus-space-diff fuzz/corpus/space-diff
	ninja -C build-fuzz fuzz/fuzz_snapshot
	mkdir -p build-fuzz/corpus-snapshot
	./build-fuzz/fuzz/fuzz_snapshot -max_total_time=$(FUZZ_TIME) build-fuzz/corpus-snapshot fuzz/corpus/snapshot
	ninja -C build-fuzz fuzz/fuzz_virtq
	mkdir -p build-fuzz/corpus-virtq
	./build-fuzz/fuzz/fuzz_virtq -max_len=28780 -max_total_time=$(FUZZ_TIME) build-fuzz/corpus-virtq fuzz/corpus/virtq
	ninja -C build-fuzz fuzz/fuzz_vhost_user
	mkdir -p build-fuzz/corpus-vhost-user
	./build-fuzz/fuzz/fuzz_vhost_user -max_len=16384 -timeout=10 -max_total_time=$(FUZZ_TIME) build-fuzz/corpus-vhost-user fuzz/corpus/vhost-user

FUZZ_RUNS ?= 10000000
fuzz-long: | deps
	scripts/fuzz-long.sh $(FUZZ_RUNS)

clean:
	rm -rf build build-asan build-tsan build-i386 build-armhf build-release build-fuzz build-fuzzlong build-coverage
