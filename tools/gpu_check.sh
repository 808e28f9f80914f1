#!/usr/bin/env bash
# The one script the lent GPU machine runs (see README "On a GPU machine").
#
#   configure (gpu preset: Release, sm_90, ninja) -> build -j16 -> every test with
#   KESTREL_REQUIRE_GPU=1 -> CUDA tests under compute-sanitizer memcheck (+ racecheck on the
#   kernel suites) -> every bench_* program -> tools/pytorch_reference.py (same sizes, same call)
#   -> a short table last.
#
# Writes at most 8 files under $OUT (the device tool returns no more):
#   build.log tests.log sanitizer.log bench.log bench.jsonl pytorch.jsonl train.log summary.txt
# A 15-minute device budget (machine start included) holds about one full call and a short one:
# see docs/PERFORMANCE.md "What the next GPU session should measure" for the order.
# Options: --quick (benchmarks in quick mode, skip racecheck), --no-pytorch, --no-sanitizer,
#   --train=N: also train ResNet-20 (--train-model=resnet56 for another) for N epochs with
#   cifar10_train and with
#   tools/pytorch_train_reference.py (same recipe: batch 512, bf16, cosine lr 0.4, SGD Nesterov,
#   weight decay 5e-4; --train-recipe=he for He et al.'s instead: batch 128, lr 0.1 divided by 10
#   at 50% and 75%, weight decay 1e-4, momentum 0.9, in bf16) on CIFAR-10 from
#   $KESTREL_CIFAR_DIR (default .gpu-cache/cifar10; made from
#   .gpu-data/cifar10-jpeg.pack.gz with .gpu-data/to_cifar_bin.py when missing), logs in train.log.
#   --experiments=LIST: the full runs of the seed experiments in LIST (comma-separated: dropout,
#   degradation, gradient_flow) on that CIFAR-10, their SVG/CSV charts and logs packed into
#   experiments.tar.gz (one file: the device tool returns at most 8); --experiment-steps=N
#   shortens seed_degradation to N steps a network (its full mode: 20000, several minutes a
#   network); seed_degradation computes in bf16 NHWC here (half the device time of fp32; the
#   claim is about optimisation, not precision), --experiment-fp32 keeps He et al.'s fp32 NCHW;
#   each program rewrites its charts after each network (seed_dropout: after each dropout rate and
#   after its expectation check), so a run cut off at the time limit keeps those done.
#   --no-tests and --no-bench skip those stages, for a call that only runs experiments.
#   --deadline=SECONDS (default 570, for the device tool's 600-s call): every stage gets at most
#   what is left before it (tests, sanitizers, benchmarks and experiments through timeout, training
#   through cifar10_train --time-limit) and is skipped when under 30 s remain, so the packed results
#   and the summary come back; pass the call's timeout_s less 30 when a call runs under a shorter
#   limit.
#   A call that runs every stage writes 9 files: leave out one (--no-sanitizer or no --train).
# CIFAR-10 is converted once into .gpu-cache/cifar10 (ignored and not carried, so it stays on a warm
# machine between calls; a carried folder is replaced on every call).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
quick=0; pytorch=1; sanitizer=1; train_epochs=0; train_model=resnet20; build=1; resnet_quick=0
tests=1; bench=1; experiments=""; experiment_steps=0; train_recipe=fast; experiment_fp32=0
deadline=570
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --no-pytorch) pytorch=0 ;;
    --no-sanitizer) sanitizer=0 ;;
    --no-build) build=0 ;;          # use build-gpu/ as carried from the development machine
    --resnet-quick) resnet_quick=1 ;;  # full kernel benchmarks, quick ResNet ones
    --train=[0-9]*) train_epochs=${a#--train=} ;;
    --train-model=resnet[0-9]*) train_model=${a#--train-model=} ;;
    --train-recipe=fast|--train-recipe=he) train_recipe=${a#--train-recipe=} ;;
    --no-tests) tests=0 ;;
    --no-bench) bench=0 ;;
    --experiments=*) experiments=${a#--experiments=} ;;
    --experiment-steps=[0-9]*) experiment_steps=${a#--experiment-steps=} ;;
    --experiment-fp32) experiment_fp32=1 ;;
    --deadline=[0-9]*) deadline=${a#--deadline=} ;;
    *) echo "usage: tools/gpu_check.sh [--quick] [--resnet-quick] [--no-pytorch] [--no-sanitizer] [--no-build] [--no-tests] [--no-bench] [--train=EPOCHS] [--train-model=resnetD] [--train-recipe=fast|he] [--experiments=dropout,degradation,gradient_flow] [--experiment-steps=N] [--experiment-fp32] [--deadline=SECONDS]" >&2; exit 2 ;;
  esac
done
# The patterns above take a leading digit; the whole value must be a number.
for n in "$train_epochs" "$experiment_steps" "${deadline:-0}"; do
  if ! [[ $n =~ ^[0-9]+$ ]]; then
    echo "tools/gpu_check.sh: '$n' is not a whole number (--train=, --experiment-steps=, --deadline=)" >&2
    exit 2
  fi
done
exec 3>&2  # status lines reach the console even from a stage whose output goes to a log
status() { echo "gpu_check: $*" | tee -a "$OUT/summary.txt" >&3; }
script_t0=$(date +%s)
# Seconds a stage may run: what is left before the deadline less `reserve` (for the work after
# it: packing, the summary), at most `cap`; 0 when under 30 s would remain.
stage_budget() {
  local reserve=$1 cap=$2 b
  b=$(( deadline - ($(date +%s) - script_t0) - reserve ))
  [ "$b" -gt "$cap" ] && b=$cap
  [ "$b" -lt 30 ] && b=0
  echo "$b"
}
# Runs "$@" (a stage named $1) under timeout with stage_budget 30 $2; when under 30 s would
# remain it says so and returns 125 without running. A stage cut off at its limit returns 124, or
# 137 when it ignored SIGTERM and was killed 10 s later (cut_off tells both; a 137 before the
# limit is another kill, e.g. for memory). The stage's limit is left in last_budget.
run_limited() {
  local name=$1 cap=$2 b
  shift 2
  b=$(stage_budget 30 "$cap")
  last_budget=$b
  if [ "$b" -eq 0 ]; then
    status "$name: skipped, under 60 s left before the deadline (--deadline=$deadline: 30 s for the stage, 30 s kept for the rest)"
    return 125
  fi
  timeout -k 10 "$b" "$@"
}
# cut_off RC STARTED BUDGET: whether a stage that began at STARTED ended at its time limit.
cut_off() { [ "$1" -eq 124 ] || { [ "$1" -eq 137 ] && [ $(( $(date +%s) - $2 )) -ge "$3" ]; }; }
last_budget=0
conv_failed=$(mktemp -u "${TMPDIR:-/tmp}/gpu_check.XXXXXX.conversion-failed")
trap 'rm -f "$conv_failed"' EXIT
: > "$OUT/summary.txt"
timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu_check: device: /' | tee -a "$OUT/summary.txt"

t0=$(date +%s)
if [ $build = 1 ]; then
  if ! { cmake --preset gpu && cmake --build --preset gpu -j 16; } > "$OUT/build.log" 2>&1; then
    status "BUILD FAILED (see build.log)"; tail -40 "$OUT/build.log"; exit 1
  fi
  status "build ok in $(( $(date +%s) - t0 )) s"
else
  # A slim tree from tools/gpu_slim_build.sh, carried as .gpu-build/build-gpu, takes the place of
  # build-gpu; it must have been built at this checkout's absolute path (checked below).
  if [ -d .gpu-build/build-gpu ]; then rm -rf build-gpu && mv .gpu-build/build-gpu build-gpu; fi
  [ -x build-gpu/bin/kestrel_cuda_tests ] || { status "--no-build but build-gpu/bin is missing"; exit 1; }
  # The binaries' library path, the test programs' compiled-in paths and the include links name
  # the checkout's absolute path: a tree moved elsewhere would run the original's files, or none.
  [ -f build-gpu/CMakeCache.txt ] || { status "--no-build: build-gpu has no CMakeCache.txt (not a tree from tools/gpu_slim_build.sh)"; exit 1; }
  old_root=$(grep -m1 '^CMAKE_HOME_DIRECTORY' build-gpu/CMakeCache.txt | cut -d= -f2)
  echo "carried build-gpu from $old_root" > "$OUT/build.log"  # folded into summary.txt at the end
  if [ "$old_root" != "$PWD" ]; then
    status "--no-build: build-gpu was built in '$old_root' but this checkout is $PWD; carried builds work only at the same path (build here instead: drop --no-build)"
    exit 1
  fi
  # A build made from other sources than these would measure the wrong code: tools/gpu_slim_build.sh
  # records the sources' checksums.
  if [ -f build-gpu/SOURCES.sha256 ]; then
    differ=$(sha256sum --quiet -c build-gpu/SOURCES.sha256 2>&1)  # one line per differing file
    stale=$(grep -c ': FAILED' <<< "$differ")
    if [ "$stale" -gt 0 ]; then
      echo "$differ" >> "$OUT/build.log"
      status "--no-build: the carried build-gpu is stale: $stale source file(s) differ from the ones it was built from (build.log); rebuild it and run tools/gpu_slim_build.sh"
      exit 1
    fi
    echo "sources match build-gpu/SOURCES.sha256 ($(wc -l < build-gpu/SOURCES.sha256) files)" >> "$OUT/build.log"
  else
    status "--no-build: no build-gpu/SOURCES.sha256 (not made by tools/gpu_slim_build.sh): cannot tell whether the build matches these sources"
  fi
  status "build: carried build-gpu (no rebuild)"
fi

# CIFAR-10 in the binary format at $KESTREL_CIFAR_DIR (default .gpu-data/cifar10), made from the
# carried lossy pack when missing; prints the folder, or nothing when there is no data. Log: $1.
cifar_dir() {
  local data=${KESTREL_CIFAR_DIR:-.gpu-cache/cifar10}
  if [ ! -f "$data/test_batch.bin" ] && [ ! -f "$conv_failed" ] && [ -f .gpu-data/cifar10-jpeg.pack.gz ] \
     && [ -f .gpu-data/to_cifar_bin.py ]; then
    # Into a temporary folder first (an earlier cut-off one's removed): a conversion cut off leaves
    # no half-written test_batch.bin. The files then move into $data, which may hold other things.
    rm -rf "$data.tmp"
    if run_limited "CIFAR-10 conversion" 300 python3 .gpu-data/to_cifar_bin.py .gpu-data/cifar10-jpeg.pack.gz "$data.tmp" >> "$1" 2>&1 \
       && [ -f "$data.tmp/test_batch.bin" ]; then
      mkdir -p "$data" && mv -f "$data.tmp"/* "$data"/ && rmdir "$data.tmp"
    else
      : > "$conv_failed"  # (cifar_dir runs in a subshell) not tried again in this call
      status "CIFAR-10: converting .gpu-data/cifar10-jpeg.pack.gz failed or was cut off (see $(basename "$1"))"
    fi
  fi
  [ -f "$data/test_batch.bin" ] && echo "$data"
}

test_rc=0
if [ $tests = 1 ]; then
  t0=$(date +%s)
  # -LE docs|install: the README compile check, the install-and-consume test and the export check
  # are host-only (CI runs them) and need this machine's compiler paths and pkg-config; the H200
  # session listed install_consumer as failed (Not Run). All CUDA tests together took 50 s there,
  # so a hung test is stopped at 180 s rather than holding a slot for long.
  run_limited tests 600 env KESTREL_REQUIRE_GPU=1 ctest --preset gpu -j 8 --timeout 180 -LE 'docs|install' > "$OUT/tests.log" 2>&1
  test_rc=$?
  summary_line=$(grep -E 'tests passed|tests failed' "$OUT/tests.log" | tail -1)
  [ -z "$summary_line" ] && summary_line="no CTest summary: $(tail -1 "$OUT/tests.log")"
  cut_off $test_rc "$t0" "$last_budget" && summary_line="stopped at the deadline, unfinished"
  [ $test_rc -ne 125 ] && status "tests: $summary_line rc=$test_rc ($(( $(date +%s) - t0 )) s)"
  # Every test CTest lists as failed, whatever its status (Failed, Timeout, SEGFAULT, Subprocess
  # killed - an out-of-memory kill -, ILLEGAL, Bus error, Not Run, ...).
  sed -n '/The following tests FAILED:/,$p' "$OUT/tests.log" | grep -E '^\s+[0-9]+ - ' | head -20 | sed 's/^/gpu_check:   /' | tee -a "$OUT/summary.txt"
fi

san_rc=0
# The CUDA toolkit's bin folder is not always on the PATH of a fresh machine.
[ $sanitizer = 1 ] && ! command -v compute-sanitizer >/dev/null 2>&1 && PATH="$PATH:${CUDA_HOME:-/usr/local/cuda}/bin"
if [ $sanitizer = 1 ] && ! command -v compute-sanitizer >/dev/null 2>&1; then
  status "compute-sanitizer not found on PATH nor in ${CUDA_HOME:-/usr/local/cuda}/bin: the sanitizer stage did not run (--no-sanitizer skips it)"
  san_rc=1
elif [ $sanitizer = 1 ]; then
  t0=$(date +%s)
  : > "$OUT/sanitizer.log"
  # memcheck: every CUDA test but the large sweeps (10-100x slower under the tool; the same
  # kernels run there at smaller sizes) and the deliberate 1 PiB cudaMalloc of the out-of-memory
  # test (memcheck reports its failing API call as an error, so every run returned 99; the test
  # stage runs it). racecheck: the kernel suites with shared memory or reductions, named exactly
  # (a '*Dropout*' pattern also took the seed experiments' training runs); then, as a run of its
  # own so that a time-out there keeps the kernels' summary, the executor's per-node workspaces
  # in the arena and BN+ReLU recomputation, not racechecked yet.
  runs=(memcheck); [ $quick = 0 ] && runs+=(racecheck racecheck-graph)
  big='*Sweep*:*On10M*:*10MElements*'
  for run in "${runs[@]}"; do
    tool=${run%%-*}
    case $run in
      memcheck) filter="*:-$big:CudaAllocator.OutOfMemory*" ;;
      racecheck) filter="CudaDropout.*:BatchNormCuda.*:BatchNormApplyCuda.*:LayerNormCuda.*:CudaReduce.*:CudaBias.*:CudaGlobalAvgPool.*:CudaMaxPool2x2.*:CudaSoftmax.*:CudaSoftmaxCrossEntropy.*:CudaOptimizer.*:CudaAugment.*:CudaArgmax.*:CudaGather.*:-$big" ;;
      racecheck-graph) filter='*GraphCuda.ArenaWorkspaces*/nchw:GraphCudaWorkspace.*:RecomputeBnReluCuda.*' ;;
    esac
    start=$(wc -l < "$OUT/sanitizer.log")
    echo "=== compute-sanitizer --tool $tool ($run, filter $filter)" >> "$OUT/sanitizer.log"
    s0=$(date +%s)
    run_limited "compute-sanitizer $run" 600 env KESTREL_REQUIRE_GPU=1 compute-sanitizer --tool "$tool" --error-exitcode 99 \
      build-gpu/bin/kestrel_cuda_tests --gtest_filter="$filter" --gtest_brief=1 >> "$OUT/sanitizer.log" 2>&1
    rc=$?; [ $rc -ne 0 ] && san_rc=$rc
    # This run's own summary (memcheck: ERROR SUMMARY; racecheck: RACECHECK SUMMARY).
    summary=$(tail -n +"$(( start + 1 ))" "$OUT/sanitizer.log" | grep -E '(ERROR|RACECHECK) SUMMARY' | tail -1)
    cut_off $rc "$s0" "$last_budget" && summary="stopped at the deadline, unfinished"
    [ $rc -ne 125 ] && status "compute-sanitizer $run: ${summary:-no summary (see sanitizer.log)} rc=$rc"
  done
  status "sanitizer done in $(( $(date +%s) - t0 )) s"
fi

bench_rc=0
if [ $bench = 1 ]; then
  : > "$OUT/bench.jsonl"; : > "$OUT/bench.log"
  qflag=(); [ $quick = 1 ] && qflag=(--quick)
  for b in build-gpu/bin/bench_*; do
    [ -x "$b" ] || continue
    t0=$(date +%s)
    echo "=== $b" >> "$OUT/bench.log"
    bflag=("${qflag[@]}")
    [ $resnet_quick = 1 ] && [ "$(basename "$b")" = bench_resnet ] && bflag=(--quick)
    run_limited "$(basename "$b")" 600 "$b" --json "$OUT/bench.jsonl" "${bflag[@]}" >> "$OUT/bench.log" 2>&1
    # Saved first: the $(basename ...) in status's argument would reset $? to 0 before rc=$?.
    rc=$?; [ $rc -ne 0 ] && bench_rc=$rc
    [ $rc -ne 125 ] && status "$(basename "$b"): rc=$rc ($(( $(date +%s) - t0 )) s)"
  done
  if [ $pytorch = 1 ] && [ -f tools/pytorch_reference.py ]; then
    t0=$(date +%s)
    if [ $resnet_quick = 1 ] && [ $quick = 0 ]; then
      PYTHONUNBUFFERED=1 run_limited pytorch_reference 600 python3 tools/pytorch_reference.py --json "$OUT/pytorch.jsonl" \
        --only copy,dropout,add_relu,batchnorm >> "$OUT/bench.log" 2>&1
      rc=$?
      PYTHONUNBUFFERED=1 run_limited pytorch_reference 600 python3 tools/pytorch_reference.py --json "$OUT/pytorch.jsonl" \
        --only resnet --quick >> "$OUT/bench.log" 2>&1
      rc2=$?; [ $rc -eq 0 ] && rc=$rc2
    else
      PYTHONUNBUFFERED=1 run_limited pytorch_reference 600 python3 tools/pytorch_reference.py --json "$OUT/pytorch.jsonl" "${qflag[@]}" >> "$OUT/bench.log" 2>&1
      rc=$?
    fi
    [ $rc -ne 125 ] && status "pytorch_reference: rc=$rc ($(( $(date +%s) - t0 )) s)"
  fi
  # ResNet training again with BN+ReLU outputs kept for backward instead of rebuilt
  # (CompileOptions::recompute_bn_relu = false): the memory recomputation saves and the time it
  # costs, beside the default rows above. Quick rows only (ResNet-20 b512, fp32 NCHW and bf16
  # NHWC), after PyTorch: the comparison needs no more, and the ratios against PyTorch come first.
  if [ -x build-gpu/bin/bench_resnet ]; then
    t0=$(date +%s)
    echo "=== build-gpu/bin/bench_resnet --recompute-bn off --quick" >> "$OUT/bench.log"
    run_limited "bench_resnet --recompute-bn off" 600 build-gpu/bin/bench_resnet --recompute-bn off --json "$OUT/bench.jsonl" --quick >> "$OUT/bench.log" 2>&1
    rc=$?; [ $rc -ne 0 ] && bench_rc=$rc
    [ $rc -ne 125 ] && status "bench_resnet --recompute-bn off: rc=$rc ($(( $(date +%s) - t0 )) s)"
  fi
fi

train_rc=0
if [ "$train_epochs" -gt 0 ]; then
  t0=$(date +%s)
  : > "$OUT/train.log"
  data=$(cifar_dir "$OUT/train.log")
  if [ -n "$data" ]; then
    if [ "$train_recipe" = he ]; then
      recipe=(--data "$data" --model "$train_model" --epochs "$train_epochs" --batch 128 --lr 0.1
              --schedule step --weight-decay 1e-4 --dtype bf16)
    else
      recipe=(--data "$data" --model "$train_model" --epochs "$train_epochs" --batch 512 --lr 0.4
              --schedule cosine --nesterov --weight-decay 5e-4 --dtype bf16)
    fi
    # --deterministic off: autotuned, possibly non-deterministic engines, as PyTorch's
    # cudnn.benchmark = True; the default (deterministic, first engine) would time another policy.
    # Kestrel gets a third of what is left when PyTorch trains after it (about twice as slow), all
    # of it otherwise; --time-limit stops it at a step with the test accuracy still reported.
    share=1; [ $pytorch = 1 ] && share=3
    left=$(stage_budget 30 $(( 600 * share )))
    b=$(( left / share ))
    # The limit counts from the first step: 40 s of it are left for data loading, autotuning and
    # the final test-set pass. Without Kestrel's run PyTorch's would compare with nothing.
    kestrel_trained=0
    if [ "$b" -lt 60 ]; then
      # A training that was asked for and did not run is not a success (as a skipped experiment).
      train_rc=3
      status "cifar10_train: skipped: its share of the $left s left before the deadline (--deadline=$deadline) is under 60 s; PyTorch's run skipped too"
    else
      echo "=== cifar10_train ${recipe[*]} --layout nhwc --deterministic off (time limit $b s)" >> "$OUT/train.log"
      timeout -k 10 "$b" build-gpu/bin/cifar10_train "${recipe[@]}" --layout nhwc --deterministic off --log-every 1000 \
        --time-limit "$(awk -v s="$b" 'BEGIN { printf "%.2f", (s - 40) / 60 }')" >> "$OUT/train.log" 2>&1
      rc=$?; [ $rc -ne 0 ] && train_rc=$rc
      status "cifar10_train: rc=$rc $(grep -E '^epoch [0-9]+/[0-9]+:' "$OUT/train.log" | tail -1)"
      kestrel_trained=1
    fi
    b=$(stage_budget 40 600)
    if [ $pytorch = 1 ] && [ $kestrel_trained = 1 ] && [ "$b" -gt 0 ]; then
      echo "=== pytorch_train_reference ${recipe[*]}" >> "$OUT/train.log"
      PYTHONUNBUFFERED=1 timeout -k 10 "$b" python3 tools/pytorch_train_reference.py "${recipe[@]}" >> "$OUT/train.log" 2>&1
      rc=$?; [ $rc -ne 0 ] && train_rc=$rc
      last=$(sed -n '/^=== pytorch_train_reference/,$p' "$OUT/train.log" | grep -E '^epoch [0-9]+/[0-9]+:' | tail -1)
      status "pytorch_train_reference: rc=$rc ${last:-no epoch finished}"
    fi
  else
    train_rc=3; status "training comparison skipped: no CIFAR-10 at ${KESTREL_CIFAR_DIR:-.gpu-cache/cifar10}$([ -f .gpu-data/cifar10-jpeg.pack.gz ] || echo ' (nor .gpu-data/cifar10-jpeg.pack.gz to make it from)')"
  fi
  status "training done in $(( $(date +%s) - t0 )) s"
fi

exp_rc=0
if [ -n "$experiments" ]; then
  t0=$(date +%s)
  exp_dir=$(mktemp -d)
  log="$exp_dir/experiments.log"
  data=$(cifar_dir "$log")
  data_args=(); [ -n "$data" ] && data_args=(--data "$data")
  IFS=, read -ra chosen <<< "$experiments"
  if [ -z "$data" ] && [ -f .gpu-data/cifar10-jpeg.pack.gz ]; then
    # The data was carried but did not convert: synthetic runs would spend the call on nothing.
    status "experiments: skipped, CIFAR-10 was carried but not converted (see experiments.log in experiments.tar.gz)"
    exp_rc=3; chosen=()
    tar -czf "$OUT/experiments.tar.gz" -C "$exp_dir" .
  elif [ -z "$data" ]; then
    status "experiments: no CIFAR-10 carried, running on synthetic data"
  fi
  for e in "${chosen[@]}"; do
    case "$e" in
      dropout|degradation|gradient_flow) ;;
      *) status "experiments: unknown experiment '$e' (dropout, degradation, gradient_flow)"; exp_rc=2; continue ;;
    esac
    len=(); [ "$e" = degradation ] && [ "$experiment_steps" -gt 0 ] && len=(--steps "$experiment_steps")
    num=(); [ "$e" = degradation ] && [ "$experiment_fp32" -eq 0 ] && num=(--dtype bf16 --layout nhwc)
    cmd=("build-gpu/bin/seed_$e" --device cuda --out "$exp_dir/$e" "${data_args[@]}" "${len[@]}" "${num[@]}")
    b=$(stage_budget 30 540)
    if [ "$b" -eq 0 ]; then
      status "seed_$e: skipped, under 60 s left before the deadline (--deadline=$deadline)"; exp_rc=3; continue
    fi
    echo "=== ${cmd[*]} (time limit $b s)" >> "$log"
    e0=$(date +%s)
    timeout -k 10 "$b" "${cmd[@]}" >> "$log" 2>&1
    rc=$?; [ $rc -ne 0 ] && exp_rc=$rc
    cut_off $rc "$e0" "$b" && status "seed_$e: stopped at its time limit; its report holds the parts it finished"
    status "seed_$e: rc=$rc ($(( $(date +%s) - e0 )) s)"
    # Packed after each experiment, so a call cut off later still returns what finished.
    timeout 20 nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$exp_dir/device.txt" 2>&1
    tar -czf "$OUT/experiments.tar.gz" -C "$exp_dir" .
  done
  packed="(nothing packed)"; [ -f "$OUT/experiments.tar.gz" ] && packed="(experiments.tar.gz)"
  status "experiments done in $(( $(date +%s) - t0 )) s $packed"
fi

if [ $build = 0 ] && [ -f "$OUT/build.log" ]; then sed 's/^/build.log: /' "$OUT/build.log" >> "$OUT/summary.txt"; rm -f "$OUT/build.log"; fi
python3 tools/gpu_summary.py "$OUT" | tee -a "$OUT/summary.txt"
# The device tool's output_tail keeps the last 12,000 characters: the table alone can fill them.
status "result: tests rc=$test_rc sanitizer rc=$san_rc bench rc=$bench_rc training rc=$train_rc experiments rc=$exp_rc ($(( $(date +%s) - script_t0 )) s; $(find "$OUT" -type f | wc -l) files under \$OUT)"
[ $test_rc -eq 0 ] && [ $san_rc -eq 0 ] && [ $bench_rc -eq 0 ] && [ $train_rc -eq 0 ] && [ $exp_rc -eq 0 ]
