"""Replace a shipped embedded model by a finished testbed build (issue 25), checked first.

    python benchmarks/testbed/ship.py --root $INTERP_HOME/testbed [--models embedded embedded-attn] [--accept-misses]

For each model: the build in ROOT/out/<model> must be the finished testbed recipe (its card's `build`
equals `BuildConfig.testbed()` / `AttnBuildConfig.testbed()`), and its card must meet every target,
unless `--accept-misses` (a model that nearly meets them; the card states each miss). Then its files
(weights, config, tokenizer, model card) replace interp/embedded or interp/embedded_attn: copied next
to the target first, swapped in by renames, the old directory kept under ROOT/replaced/<model>-<time>.
The shipped-weights budget (tests/test_shipped_budget.py, 100 MiB) is checked before anything moves.
`--check-only` says what would happen and changes nothing. `--repo` ships into another checkout
(the tiny-scale test of `rebuild.py` uses a scratch copy).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TARGET_DIRS = {"embedded": "interp/embedded", "embedded-attn": "interp/embedded_attn"}
FILES = ("model.safetensors", "config.json", "model_card.json")
BUDGET = 100 * 2**20
WEIGHTS = ("interp/embedded/*.safetensors", "interp/embedded_attn/*.safetensors", "interp/moex/shipped/*/model.safetensors",
           "saes/**/sae_weights.safetensors")  # as tests/test_shipped_budget.py


def expected_build(model: str, quick: bool) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks" / "testbed"))
    from train import configs  # the same recipes train.py builds

    return dataclasses.asdict(configs(quick)[model])


def check(model: str, out: Path, accept_misses: bool, quick: bool) -> str:
    """'' when `out` may be shipped, else the one-line reason."""
    card_path = out / "model_card.json"
    if not card_path.is_file() or not all((out / f).exists() for f in FILES) or not (out / "tokenizer").is_dir():
        return f"{model}: no finished build in {out} (train.py has not finished it)"
    card = json.loads(card_path.read_text())
    if card.get("build") != expected_build(model, quick):
        return f"{model}: {out} was built by another config than the testbed recipe"
    if card.get("target_misses") and not accept_misses:
        return f"{model}: misses targets ({card.get('target_line')}); pass --accept-misses to ship it anyway"
    return ""


def budget_after(repo: Path, replacing: dict[str, Path]) -> int:
    """Shipped weights in bytes once `replacing` (target dir -> new build dir) is done."""
    total = 0
    for pat in WEIGHTS:
        for p in repo.glob(pat):
            if not any(p.parent == repo / t for t in replacing):
                total += p.stat().st_size
    for src in replacing.values():
        total += sum(p.stat().st_size for p in src.glob("*.safetensors"))
    return total


def ship(model: str, out: Path, repo: Path, keep_root: Path) -> Path:
    target = repo / TARGET_DIRS[model]
    staged = target.with_name(target.name + ".incoming")
    if staged.exists():
        shutil.rmtree(staged)  # our own leftover from a stopped ship
    staged.mkdir()
    for f in FILES:
        shutil.copy2(out / f, staged / f)
    shutil.copytree(out / "tokenizer", staged / "tokenizer")
    keep = keep_root / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    keep.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.move(str(target), str(keep))
    staged.rename(target)
    return keep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=str(Path(os.environ.get("INTERP_HOME") or Path.home() / ".cache" / "interp") / "testbed"))
    p.add_argument("--models", nargs="+", choices=list(TARGET_DIRS), default=list(TARGET_DIRS))
    p.add_argument("--accept-misses", action="store_true", help="ship a model whose card states missed targets")
    p.add_argument("--check-only", action="store_true")
    p.add_argument("--repo", type=Path, default=ROOT, help="the checkout to ship into")
    p.add_argument("--quick", action="store_true", help="expect train.py --quick's tiny configs (tests)")
    a = p.parse_args(argv)
    root = Path(a.root)
    outs = {m: root / "out" / m for m in a.models}
    problems = [why for m, o in outs.items() if (why := check(m, o, a.accept_misses, a.quick))]
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    total = budget_after(a.repo, {TARGET_DIRS[m]: o for m, o in outs.items()})
    if total > BUDGET:
        print(f"error: shipped weights would be {total / 2**20:.1f} MiB > {BUDGET / 2**20:.0f} MiB", file=sys.stderr)
        return 2
    for m, o in outs.items():
        card = json.loads((o / "model_card.json").read_text())
        if a.check_only:
            print(f"{m}: would ship {o} -> {a.repo / TARGET_DIRS[m]} ({card['target_line']})")
            continue
        keep = ship(m, o, a.repo, root / "replaced")
        print(f"{m}: shipped {o} -> {a.repo / TARGET_DIRS[m]} (previous kept in {keep}); {card['target_line']}")
    print(f"shipped weights after: {total / 2**20:.1f} MiB of {BUDGET / 2**20:.0f}")
    if not a.check_only and (a.repo / "benchmarks" / "convert_shipped.py").exists():
        # the runtime issue's one-time conversion to the bridge's formats; the builds here are TransformerLens-format
        print("next: python benchmarks/convert_shipped.py " + " ".join(outs) + "  (the shipped format of the model runtime)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
