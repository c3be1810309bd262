"""Core subcommands: demo, build-default, collect, app."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from interp.data.sources import add_source_args
from interp.errors import InterpError

log = logging.getLogger(__name__)

DEMO_PROMPTS = (
    "When Mary and John went to the store, John gave a drink to",
    "The war lasted from the year 1732 to the year 17",
    "The color of a ripe banana is",
    "The animal that says moo is the",
    "A window is usually made of",
)


def cmd_demo(args) -> int:
    import torch

    from interp.models import load_model

    from interp.hooks import prompt_tokens

    if args.top < 1:
        raise InterpError(f"--top {args.top}: must be at least 1")
    prompts = args.prompt or list(DEMO_PROMPTS)
    if any(not p.strip() for p in prompts):
        raise InterpError("--prompt is empty")
    model = load_model(args.model, device=args.device, dtype=args.dtype, processing=args.processing)
    args.top = min(args.top, model.cfg.d_vocab)
    for p in prompts:
        toks = prompt_tokens(model, p, truncate=args.truncate)
        with torch.no_grad():
            probs = model(toks)[0, -1].softmax(-1)
        top = probs.topk(args.top)
        preds = ", ".join(f"{model.tokenizer.decode([int(i)])!r} {float(v):.2f}" for v, i in zip(top.values, top.indices))
        print(f"{p!r} -> {preds}")
    return 0


def cmd_build_default(args) -> int:
    from interp.build import BuildConfig, train_embedded_model
    from interp.models import EMBEDDED_DIR

    from interp import io

    if args.attn_only:
        try:
            from interp.build_attn import EMBEDDED_ATTN_DIR, AttnBuildConfig, train_attn_model
        except ImportError:
            raise InterpError("this version of interp has no attention-only model builder (interp.build_attn)") from None
        cfg = AttnBuildConfig.quick() if args.quick else AttnBuildConfig()
        out = Path(args.out) if args.out else EMBEDDED_ATTN_DIR
        io.check_output_dir(out, marker="model.safetensors", overwrite=True, allow_package=args.out is None)
        _, card = train_attn_model(cfg, out_dir=out, work_dir=Path(args.work_dir) / ("attn-quick" if args.quick else "attn-full"))
        print(f"model written to {out}")
        print(f"targets: {card['target_line']}")  # the last line: met, or each miss and by how much
        return 0
    cfg = BuildConfig.quick() if args.quick else BuildConfig()
    out = Path(args.out) if args.out else EMBEDDED_DIR
    # A user-given --out must be empty, new, or a model this command wrote (never another directory).
    io.check_output_dir(out, marker="model.safetensors", overwrite=True, allow_package=args.out is None)
    io.check_parent_writable(Path(args.work_dir) / "x", "--work-dir")
    _, card = train_embedded_model(cfg, out_dir=out, work_dir=Path(args.work_dir) / ("quick" if args.quick else "full"))
    print(f"model written to {out}")
    for k in ("ioi_accuracy", "ioi_logit_diff", "greater_than_prob_diff", "docstring_accuracy", "fact_accuracy", "heldout_loss"):
        print(f"  {k}: {card[k]}")
    if not args.skip_saes and not args.quick:
        from interp.sae.build import build_default_saes  # the shipped SAEs (SAE issue)

        build_default_saes(model_dir=out)
    print(f"targets: {card['target_line']}")  # the last line: met, or each miss and by how much
    return 0


def cmd_collect(args) -> int:
    from interp.activations import CollectConfig, collect_activations
    from interp.models import load_model

    # cheap checks first (sizes, the output path, the source), then the model, then the rest
    cfg = CollectConfig(hooks=args.hooks, n_tokens=args.tokens, source=args.source, seq_len=args.context_size,
                        batch_size=args.batch_size, shard_rows=args.shard_rows, dtype=args.store_dtype, text_field=args.text_field,
                        split=args.split, prepend_bos=args.prepend_bos)
    from interp import io
    from interp.data.sources import check_token_budget, open_source

    io.check_output_dir(args.out, marker="manifest.json", overwrite=True, what="--out",
                        inputs=[args.source] if args.source != "corpus" else [])
    check_token_budget(open_source(cfg.source_spec), cfg.n_tokens)  # before the model loads
    model = load_model(args.model, device=args.device, dtype=args.dtype, processing=args.processing)
    from interp.commands.scale import parallel_from_args

    man = collect_activations(model, cfg, args.out, model_name=args.model, overwrite=args.overwrite, parallel=parallel_from_args(args))
    print(f"{man.n_tokens} tokens x {len(man.hooks)} hooks in {man.n_shards} shards -> {args.out}")
    return 0


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def app_entry() -> Path:
    """app/main.py: beside the package in a source checkout, else the installed top-level `app` package."""
    here = Path(__file__).resolve().parents[2] / "app" / "main.py"
    if here.exists():
        return here
    spec = importlib.util.find_spec("app")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if (Path(loc) / "main.py").exists() and (Path(loc) / "serve.py").exists():
                return Path(loc) / "main.py"
    raise InterpError("the dashboard (the `app` package) is not installed; reinstall interp (pip install .)")


def cmd_app(args) -> int:
    if not 0 < args.port < 65536:
        raise InterpError(f"--port {args.port}: expected 1-65535")
    entry = app_entry()
    if not port_free(args.host, args.port):
        raise InterpError(f"port {args.port} on {args.host} is already in use (or {args.host} is not an address of this machine); pick another with --port")
    # app/serve.py = `python -m streamlit` with st.navigation in charge from the first request
    cmd = [sys.executable, str(entry.parent / "serve.py"), "run", str(entry), "--server.headless", "true",
           "--server.address", args.host, "--server.port", str(args.port), "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "minimal", "--", "--model", args.model]
    url = f"http://{args.host}:{args.port}"
    print(f"interp dashboard: {url}  (Ctrl-C to stop)", flush=True)
    if not getattr(args, "no_window", False):
        from interp.commands.window import open_when_ready

        open_when_ready(url)  # its own app window once the server answers (Chromium/Chrome --app, else the browser)
    return run_child(cmd)


def run_child(cmd: list[str]) -> int:
    """Run `cmd` and forward SIGTERM / SIGINT / SIGHUP to it, then wait for it to exit, so stopping
    `interp app` never leaves Streamlit serving the port. The child's exit code is returned.
    A `kill -9` of this process cannot forward anything: the child asked the kernel to stop it
    when its parent dies (`interp.procs.die_with_parent`)."""
    from interp.procs import die_with_parent

    child = subprocess.Popen(cmd, env=dict(os.environ), preexec_fn=die_with_parent)
    forwarded: list[int] = []

    def forward(signum, frame):
        forwarded.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while True:
            try:
                rc = child.wait(timeout=10 if forwarded else None)
                break
            except subprocess.TimeoutExpired:  # the child ignored the signal for 10 s: stop it for good
                child.kill()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if forwarded:
        return 0 if forwarded[0] in (signal.SIGTERM, signal.SIGINT) else 128 + forwarded[0]
    return rc


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="print what a model predicts on a few prompts")
    p.add_argument("--model", default="embedded", help="embedded, a local directory, or a TransformerLens name")
    p.add_argument("--prompt", action="append", help="a prompt (repeatable); default: a few built-in ones")
    p.add_argument("--top", type=int, default=3, help="how many next tokens to show")
    p.add_argument("--truncate", action="store_true", help="cut prompts longer than the model's context instead of refusing them")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("build-default", help="rebuild the embedded corpus, tokenizer, model (and its SAEs)")
    p.add_argument("--quick", action="store_true", help="a tiny model in under 2 minutes (for tests)")
    p.add_argument("--out", help="output directory (default: the package's embedded model)")
    p.add_argument("--work-dir", default="runs/build-default", help="checkpoints and tokenizer scratch")
    p.add_argument("--skip-saes", action="store_true", help="do not rebuild the shipped SAEs")
    p.add_argument("--attn-only", action="store_true", help="build the attention-only model embedded-attn instead")
    p.set_defaults(func=cmd_build_default)

    p = sub.add_parser("collect", help="stream activations at hooks into sharded safetensors")
    p.add_argument("--model", default="embedded")
    p.add_argument("--hooks", nargs="+", required=True, help="hook names, NAME or NAME:HEAD (e.g. blocks.1.attn.hook_z:3)")
    p.add_argument("--tokens", type=int, required=True, help="number of tokens to record")
    p.add_argument("--out", required=True, help="output directory")
    add_source_args(p)
    p.add_argument("--batch-size", type=int, default=32, help="rows per forward pass")
    p.add_argument("--shard-rows", type=int, default=256, help="rows per shard file (memory holds one shard per hook)")
    p.add_argument("--store-dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="dtype of the stored activations (the model's dtype is the global --dtype)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous collect run in --out (atomically); other directories are never replaced")
    from interp.commands.scale import add_launch_args, parallel_command

    add_launch_args(p)
    p.set_defaults(func=parallel_command(cmd_collect))

    p = sub.add_parser("app", help="launch the local dashboard")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: localhost only)")
    p.add_argument("--model", default="embedded", help="model selected at start")
    p.add_argument("--no-window", action="store_true",
                   help="only serve: open no window (default: an app window in Chromium/Chrome, else the default browser)")
    p.set_defaults(func=cmd_app)
