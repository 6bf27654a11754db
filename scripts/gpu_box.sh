#!/usr/bin/env bash
# From collected GPIC shards to packed, evaluated output on one machine, one worker per GPU (or --jobs N on CPU).
#
#   scripts/gpu_box.sh --shards 'raw/gpic_raw_{00000..07999}.tar' --out work/ --gpus 0,1,2,3,4,5,6,7 \
#       --caption-model Qwen/Qwen3-VL-4B-Instruct --dino-model facebook/dinov2-large \
#       [--dedup-weights sscd_disc_mixup.torchscript.pt] \
#       --train-shards 8000 --val 200000 --test 1000000 [--generated samples/]
#
# Steps (each leaves OUT/.done/<step>; a rerun skips finished steps and, inside a step, finished shards):
#   catalog    metadata catalog of the inputs, problems quarantined            CPU, all cores
#   filters    license, quality, safety-cpu stages (+ vlm-judge with --judge-model, one worker per GPU)
#   embed      dedup embeddings, one worker per GPU, into OUT/embed_cache
#   dedup      the near-duplicate graph and GPIC's rule over every cached embedding
#   caption    Qwen3-VL captions, one worker per GPU, into OUT/captions (one parquet per shard)
#   captionqc  caption QC over all shards with the new captions (skipped with --no-caption-qc)
#   pack       splits, tiers, GPIC tars, manifest (every stage's decisions applied), then verify
#   refstats   FD-DINOv2 reference statistics of the packed test split: partials per GPU, then one merge
#   eval       FD-DINOv2 / PRDC / MMD of --generated against them (only with --generated)
# Worker w of W gets the w-th contiguous block of the sorted shard list (`--rank w --world-size W`), on GPU w.
# Logs: OUT/logs/<step>[.<rank>].log; step times: OUT/logs/times.tsv.
set -euo pipefail

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

SHARDS="" OUT="" GPUS="" JOBS=1 CAPTION_MODEL="tiny" DINO_MODEL="tiny" ENCODER="sscd" WEIGHTS=""
JUDGE_MODEL="" TRAIN_SHARDS=8 VAL=0.05 TEST=0.1 SEED=0 GENERATED="" CAPTION_QC=1 MAX_EMB="" CAPTION_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) SHARDS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --gpus) GPUS="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --caption-model) CAPTION_MODEL="$2"; shift 2 ;;
    --caption-arg) CAPTION_ARGS+=("$2"); shift 2 ;;
    --dino-model) DINO_MODEL="$2"; shift 2 ;;
    --dedup-encoder) ENCODER="$2"; shift 2 ;;
    --dedup-weights) WEIGHTS="$2"; shift 2 ;;
    --judge-model) JUDGE_MODEL="$2"; shift 2 ;;
    --train-shards) TRAIN_SHARDS="$2"; shift 2 ;;
    --val) VAL="$2"; shift 2 ;;
    --test) TEST="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --max-embeddings) MAX_EMB="$2"; shift 2 ;;
    --generated) GENERATED="$2"; shift 2 ;;
    --no-caption-qc) CAPTION_QC=0; shift ;;
    -h|--help) usage ;;
    *) echo "gpu_box.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$SHARDS" ] && [ -n "$OUT" ] || usage

GPIC_LAB="${GPIC_LAB:-gpic-lab}"  # e.g. GPIC_LAB="python -m gpic_lab.commands.cli"
if [ -n "$GPUS" ]; then IFS=, read -r -a SLOTS <<< "$GPUS"; else SLOTS=(); for ((i = 0; i < JOBS; i++)); do SLOTS+=(""); done; fi
W=${#SLOTS[@]}
mkdir -p "$OUT/logs" "$OUT/.done"
export GPIC_LAB_PROGRESS=on GPIC_LAB_PROGRESS_INTERVAL="${GPIC_LAB_PROGRESS_INTERVAL:-60}"

say() { echo "$(date +%Y-%m-%dT%H:%M:%S) gpu_box: $*" | tee -a "$OUT/logs/recipe.log" >&2; }

gl() { $GPIC_LAB "$@"; }  # word-split GPIC_LAB on purpose (a command with arguments)

# fan STEP CMD...: W workers of CMD (one per GPU slot), each with --rank/--world-size; fails if any worker fails.
fan() {
  local step="$1"; shift
  local pids=() r failed=0
  for ((r = 0; r < W; r++)); do
    (
      if [ -n "${SLOTS[$r]}" ]; then export CUDA_VISIBLE_DEVICES="${SLOTS[$r]}"; fi
      gl "$@" --rank "$r" --world-size "$W"
    ) > "$OUT/logs/$step.$r.log" 2>&1 &
    pids+=($!)
  done
  for ((r = 0; r < W; r++)); do
    wait "${pids[$r]}" || { failed=1; say "$step: worker $r failed (log: $OUT/logs/$step.$r.log)"; }
  done
  return "$failed"
}

# step NAME FUNCTION: run once, timed, logged; skipped when OUT/.done/NAME exists.
step() {
  local name="$1"; shift
  if [ -e "$OUT/.done/$name" ]; then say "$name: done before, skipped"; return 0; fi
  say "$name: start"
  local t0=$SECONDS
  "$@"
  printf '%s\t%s\t%s\n' "$name" "$((SECONDS - t0))" "$(date +%Y-%m-%dT%H:%M:%S)" >> "$OUT/logs/times.tsv"
  touch "$OUT/.done/$name"
  say "$name: done in $((SECONDS - t0)) s"
}

do_catalog() {
  gl catalog "$SHARDS" -o "$OUT/catalog.parquet" --on-error quarantine --no-caption-required \
    > "$OUT/logs/catalog.log" 2>&1
}

do_filters() {
  local s
  for s in license quality safety-cpu; do
    gl stage "$s" "$SHARDS" --out "$OUT/stages/$s" > "$OUT/logs/stage-$s.log" 2>&1
  done
  if [ -n "$JUDGE_MODEL" ]; then
    fan vlm-judge stage vlm-judge "$SHARDS" --out "$OUT/stages/vlm-judge" -p "model=$JUDGE_MODEL"
    gl stage vlm-judge "$SHARDS" --out "$OUT/stages/vlm-judge" -p "model=$JUDGE_MODEL" \
      >> "$OUT/logs/stage-vlm-judge.log" 2>&1  # every shard is done: this only merges the tables
  fi
}

ENC_ARGS=(--encoder "$ENCODER" --cache "$OUT/embed_cache")
[ -n "$WEIGHTS" ] && ENC_ARGS+=(--weights "$WEIGHTS")
do_embed() { fan embed dedup "$SHARDS" "${ENC_ARGS[@]}"; }
do_dedup() { gl dedup "$SHARDS" -o "$OUT/dedup/decisions.parquet" "${ENC_ARGS[@]}" > "$OUT/logs/dedup.log" 2>&1; }

do_caption() { fan caption caption "$SHARDS" --out "$OUT/captions" --model "$CAPTION_MODEL" "${CAPTION_ARGS[@]}"; }
do_captionqc() {
  gl stage caption-qc "$SHARDS" --out "$OUT/stages/caption-qc" -p "captions=$OUT/captions" \
    > "$OUT/logs/captionqc.log" 2>&1
}

do_pack() {
  local inputs=("$SHARDS" "$OUT/stages/license" "$OUT/stages/quality" "$OUT/stages/safety-cpu"
                "$OUT/dedup/decisions.parquet")
  [ -d "$OUT/stages/vlm-judge" ] && inputs+=("$OUT/stages/vlm-judge")
  [ "$CAPTION_QC" = 1 ] && inputs+=("$OUT/stages/caption-qc")
  gl pack "${inputs[@]}" --captions "$OUT/captions" --out "$OUT/packed" --shards "$TRAIN_SHARDS" \
    --val "$VAL" --test "$TEST" --seed "$SEED" > "$OUT/logs/pack.log" 2>&1
  gl verify "$OUT/packed/manifest.json" >> "$OUT/logs/pack.log" 2>&1
}

do_refstats() {
  rm -rf "$OUT/refstats"  # a partial run of this step left partial files; stats files are never overwritten
  fan refstats refstats "$OUT/packed/test" --model "$DINO_MODEL" --out "$OUT/refstats/partials" --split test
  local extra=()
  [ -n "$MAX_EMB" ] && extra=(--max-embeddings "$MAX_EMB")
  gl refstats "$OUT/refstats/partials" --merge --out "$OUT/refstats" --split test "${extra[@]}" \
    > "$OUT/logs/refstats-merge.log" 2>&1
}

do_eval() {
  local ref
  ref=$(ls "$OUT"/refstats/gpic-test_*.npz | head -n 1)
  gl eval "$GENERATED" --ref "$ref" --model "$DINO_MODEL" -o "$OUT/eval.json" > "$OUT/logs/eval.log" 2>&1
}

say "shards $SHARDS -> $OUT; $W worker(s)${GPUS:+ on GPUs $GPUS}"
step catalog do_catalog
step filters do_filters
step embed do_embed
step dedup do_dedup
step caption do_caption
[ "$CAPTION_QC" = 1 ] && step captionqc do_captionqc
step pack do_pack
step refstats do_refstats
[ -n "$GENERATED" ] && step eval do_eval
say "finished: $OUT/packed/manifest.json${GENERATED:+, $OUT/eval.json}; step times in $OUT/logs/times.tsv"
