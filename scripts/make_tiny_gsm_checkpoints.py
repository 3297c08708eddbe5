"""Save tiny random checkpoints so `dsr model assemble`, `dsr train` and the eval backend run end to end.

Usage: python scripts/make_tiny_gsm_checkpoints.py OUT_DIR [--with-data N]

Writes OUT_DIR/qwen2_5_vl_tiny/ (a ~0.1 M-parameter Qwen2.5-VL with a word-level tokenizer carrying the
Qwen special tokens), OUT_DIR/pi3_tiny/model.safetensors (π³ checkpoint layout: `encoder.` prefix, fused qkv,
LayerScale gammas, plus decoder / Pi3X `depth_encoder.*` keys that assembly must ignore) and, with
--with-data, OUT_DIR/data/dsr_train.json with N synthetic moving-square QAs and their videos. Then:

    dsr model assemble --qwen OUT_DIR/qwen2_5_vl_tiny --pi3 OUT_DIR/pi3_tiny --out OUT_DIR/gsm \\
        --num-queries 4 --pi3-heads 4
"""

from __future__ import annotations

import argparse

from dsr.gsm.tiny import make_synthetic_export, make_tiny_checkpoints


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--with-data", type=int, default=0, metavar="N", help="also write N synthetic QAs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    qwen, pi3 = make_tiny_checkpoints(args.out_dir, seed=args.seed)
    print(f"qwen: {qwen}\npi3: {pi3}")
    if args.with_data:
        print(f"data: {make_synthetic_export(args.out_dir + '/data', args.with_data, seed=args.seed)}")


if __name__ == "__main__":
    main()
