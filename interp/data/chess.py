"""Chess games as character-level PGN strings, and the board state behind every white move.

A game is one string in the style of Karvonen et al. (2024): ``";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6"``
(no spaces after the move number, a leading ``;``). Games come from

* ``engine="stockfish"`` (default): Stockfish self-play (Debian package ``stockfish``:
  ``apt-get install -y stockfish``), node-limited on one thread, with a seeded draw among its
  top candidates (see `stockfish_game`), so game i is a function of (settings, seed, i);
* ``engine="random"``: a weighted-random legal-move player that prefers captures, checks,
  castling and developing moves, with a per-game temperature (needs nothing);
* optionally mixed: ``random_fraction`` of the Stockfish games are weighted-random.

`build_game_store` generates them in chunks with parallel worker processes into a resumable
store under ``user_data_dir('chess')`` (sha256 manifest; a killed run continues);
`load_or_generate` returns the first n games of a store, generating what is missing.

Board-state properties (`board_properties`) are computed with python-chess at each ``'.'`` of a
move number, i.e. just before a white move: the piece on every square as one of 13 classes
(`PIECE_CLASSES`, index 0 = empty), whether the side to move is in check, whether white has a
pinned piece, and the four castling rights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import shutil
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import chess
import numpy as np
from tqdm import tqdm

from interp.errors import InterpError

log = logging.getLogger(__name__)

VOCAB = " #+-.0123456789;=BKNOQRabcdefghx"
"""Every character a game string may contain; token id = index in this string."""
STOI = {c: i for i, c in enumerate(VOCAB)}
PIECE_CLASSES = ("empty", "P", "N", "B", "R", "Q", "K", "p", "n", "b", "r", "q", "k")
"""The 13 classes of a square: empty, white pieces (upper case), black pieces (lower case)."""
EXTRA_PROPERTIES = ("in_check", "white_has_pin", "white_kingside", "white_queenside", "black_kingside", "black_queenside")


def encode(text: str) -> list[int]:
    """Characters -> token ids; an unknown character is an `InterpError`."""
    try:
        return [STOI[c] for c in text]
    except KeyError as e:
        raise InterpError(f"character {e.args[0]!r} is not in the chess vocabulary {VOCAB!r}") from None


def decode(ids) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


@dataclass
class ChessDataConfig:
    n_games: int = 2000
    """how many games to generate"""
    seed: int = 0
    """games are a pure function of (engine settings, seed, index)"""
    max_chars: int = 257
    """stop a game once its string reaches this length (a model sees n_ctx + 1 characters)"""
    engine: str = "stockfish"
    """stockfish (Stockfish self-play, needs the `stockfish` binary) or random (weighted-random legal moves)"""
    stockfish_path: str = "stockfish"
    """binary name or path for engine=stockfish"""
    stockfish_nodes: int = 300
    """node limit per Stockfish move (deterministic with one thread; low = fast and weak)"""
    random_fraction: float = 0.0
    """with engine=stockfish, the fraction of games that are weighted-random instead (more unusual positions)"""

    def __post_init__(self):
        if self.n_games < 1:
            raise InterpError("n_games must be >= 1")
        if self.max_chars < 8:
            raise InterpError("max_chars must be >= 8")
        if self.engine not in ENGINES:
            raise InterpError(f"unknown chess engine {self.engine!r}; use {' or '.join(ENGINES)}")
        if self.stockfish_nodes < 1:
            raise InterpError("stockfish_nodes must be >= 1")
        if not 0.0 <= self.random_fraction <= 1.0:
            raise InterpError(f"random_fraction must be in [0, 1], got {self.random_fraction}")

    def store_name(self) -> str:
        """The game store's directory name: every setting that changes a game, never n_games (a store grows)."""
        if self.engine == "random":
            return f"random_s{self.seed}_c{self.max_chars}"
        return f"stockfish_s{self.seed}_c{self.max_chars}_n{self.stockfish_nodes}_r{self.random_fraction:g}"


ENGINES = ("stockfish", "random")


def _move_weight(board: chess.Board, move: chess.Move) -> float:
    w = 1.0
    if board.is_capture(move):
        w += 3.0
    if board.is_castling(move):
        w += 4.0
    piece = board.piece_type_at(move.from_square)
    if piece in (chess.KNIGHT, chess.BISHOP) and chess.square_rank(move.from_square) in (0, 7):
        w += 2.0  # development
    if piece == chess.PAWN and chess.square_file(move.from_square) in (3, 4) and board.fullmove_number < 6:
        w += 2.0
    if move.promotion:
        w += 5.0
    if board.gives_check(move):
        w += 2.0
    return w


def _append_move(text: str, board: chess.Board, move: chess.Move) -> str:
    san = board.san(move)
    if board.turn == chess.WHITE:
        return f"{text}{' ' if len(text) > 1 else ''}{board.fullmove_number}.{san}"
    return f"{text} {san}"


def _game_rng(seed: int, index: int) -> random.Random:
    return random.Random(seed * 1_000_003 + index)


def random_game(rng: random.Random, max_chars: int) -> str:
    """One weighted-random game, stopped at game end or once it reaches `max_chars` characters."""
    board, text = chess.Board(), ";"
    temp = rng.choice((0.5, 1.0, 2.0))  # per-game style: sharper or flatter preferences
    while not board.is_game_over(claim_draw=False) and len(text) < max_chars:
        moves = list(board.legal_moves)
        weights = [_move_weight(board, m) ** (1.0 / temp) for m in moves]
        move = rng.choices(moves, weights=weights, k=1)[0]
        text = _append_move(text, board, move)
        board.push(move)
    return text[:max_chars]


def find_stockfish(name: str = "stockfish") -> str | None:
    """Path of the Stockfish binary (Debian installs it as /usr/games/stockfish, often not on PATH)."""
    for cand in (name, f"/usr/games/{name}"):
        found = shutil.which(cand) or (cand if Path(cand).is_file() else None)
        if found:
            return found
    return None


def open_stockfish(path: str = "stockfish"):
    """A python-chess UCI engine on one thread (deterministic under a node limit)."""
    import chess.engine

    binary = find_stockfish(path)
    if binary is None:
        raise InterpError(f"stockfish binary {path!r} not found; `apt-get install -y stockfish` or use engine=random")
    eng = chess.engine.SimpleEngine.popen_uci(binary)
    eng.configure({"Threads": 1, "Hash": 16})
    return eng


MULTIPV = 4
"""candidate moves Stockfish reports per position; a 'weaker' move is drawn among them"""


def stockfish_game(eng, cfg: ChessDataConfig, index: int) -> str:
    """Game `index` of Stockfish self-play.

    Variety and strength: each side of each game gets a deviation probability p in
    {0.02, 0.1, 0.25, 0.4}; at each move, with probability p, the move is drawn uniformly from
    Stockfish's top `MULTIPV` candidates, else its best move is played. (Stockfish's own
    "Skill Level" would do the same but draws from a clock-seeded PRNG, so games would not be
    reproducible by seed; this keeps the randomness in our seeded `random.Random`.)
    `game=index` makes python-chess send `ucinewgame` (a cleared hash) before every game, so
    a game depends on (settings, seed, index) only.
    """
    import chess.engine

    rng = _game_rng(cfg.seed, index)
    if cfg.random_fraction and rng.random() < cfg.random_fraction:
        return random_game(rng, cfg.max_chars)
    p_dev = {chess.WHITE: rng.choice((0.02, 0.1, 0.25, 0.4)), chess.BLACK: rng.choice((0.02, 0.1, 0.25, 0.4))}
    board, text = chess.Board(), ";"
    limit = chess.engine.Limit(nodes=cfg.stockfish_nodes)
    while not board.is_game_over(claim_draw=False) and len(text) < cfg.max_chars:
        infos = eng.analyse(board, limit, multipv=MULTIPV, game=("interp", cfg.seed, index))
        cands = [inf["pv"][0] for inf in infos if inf.get("pv")]
        if not cands:  # an engine that returns no PV (should not happen): fall back to any legal move
            cands = list(board.legal_moves)
        move = rng.choice(cands) if rng.random() < p_dev[board.turn] else cands[0]
        text = _append_move(text, board, move)
        board.push(move)
    return text[: cfg.max_chars]


def stockfish_games(cfg: ChessDataConfig, start: int = 0) -> list[str]:
    """Games start .. start + n_games - 1 of Stockfish self-play (one engine process)."""
    eng = open_stockfish(cfg.stockfish_path)
    try:
        return [stockfish_game(eng, cfg, start + i)
                for i in tqdm(range(cfg.n_games), desc="stockfish games", leave=False, disable=cfg.n_games < 20)]
    finally:
        eng.quit()


def generate_games(cfg: ChessDataConfig, start: int = 0) -> list[str]:
    """Games start .. start + n_games - 1 for `cfg` (each a pure function of the settings, seed and index)."""
    if cfg.engine == "stockfish":
        return stockfish_games(cfg, start)
    return [random_game(_game_rng(cfg.seed, start + i), cfg.max_chars)
            for i in tqdm(range(cfg.n_games), desc="chess games", leave=False, disable=cfg.n_games < 1000)]


# ---------------------------------------------------------------------------------------------
# The game store: games generated in chunks by parallel workers, cached, resumable.

STORE_MARKER = "manifest.json"
CHUNK = 100
"""games per chunk file (the unit of resumption)"""


def default_store_root() -> Path:
    from interp.io import user_data_dir

    return user_data_dir("chess")


def _chunk_path(store: Path, c: int) -> Path:
    return store / f"chunk-{c:06d}.txt"


def _read_manifest(store: Path) -> dict:
    p = store / STORE_MARKER
    try:
        man = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InterpError(f"{p} is not a readable game-store manifest ({e.__class__.__name__}); remove the store or give another --store") from None
    if man.get("kind") != "interp-chess-games":
        raise InterpError(f"{store} is not an interp chess game store (manifest kind {man.get('kind')!r})")
    return man


def _good_chunks(store: Path, man: dict) -> set[int]:
    """Chunks listed in the manifest whose file is there with the recorded sha256 (others are regenerated)."""
    from interp.io import sha256_file

    good = set()
    for key, rec in man.get("chunks", {}).items():
        p = _chunk_path(store, int(key))
        if p.is_file() and p.stat().st_size == rec["bytes"] and sha256_file(p) == rec["sha256"]:
            good.add(int(key))
        else:
            log.warning("game chunk %s is missing or corrupt; it will be regenerated", p)
    return good


_WORKER_ENGINE = None


def _worker_init(stockfish_path: str | None, in_worker: bool = True) -> None:
    import atexit

    global _WORKER_ENGINE
    if stockfish_path is not None:
        _WORKER_ENGINE = open_stockfish(stockfish_path)
        if in_worker:  # the main process quits its engine itself (in build_game_store's finally)
            atexit.register(_WORKER_ENGINE.quit)


def _worker_chunk(args) -> tuple[int, list[str]]:
    cfg, c = args
    if cfg.engine == "stockfish":
        eng = _WORKER_ENGINE or open_stockfish(cfg.stockfish_path)
        return c, [stockfish_game(eng, cfg, c * CHUNK + i) for i in range(CHUNK)]
    return c, [random_game(_game_rng(cfg.seed, c * CHUNK + i), cfg.max_chars) for i in range(CHUNK)]


def _exit_on_sigterm():
    """Turn SIGTERM into SystemExit in the main thread; -> the previous handler (None off the main thread)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class GameStore(NamedTuple):
    path: Path
    n_available: int
    """games in complete, verified chunks (a prefix of the game sequence)"""
    games_per_second: float
    """generation speed of this call (0 when nothing was generated)"""


def build_game_store(cfg: ChessDataConfig, root: str | Path | None = None, workers: int = 1,
                     progress=None) -> GameStore:
    """Make sure games 0 .. cfg.n_games - 1 exist in the store `root/cfg.store_name()`.

    Games are generated `CHUNK` at a time by `workers` processes (each with its own Stockfish),
    each chunk written atomically and recorded with its sha256 in ``manifest.json``; a killed run
    continues where it stopped, a corrupt chunk is regenerated. Game i depends only on the
    settings, the seed and i, so the store is the same for any number of workers.
    `progress(done_chunks, total_chunks)` is called after every chunk.
    """
    import multiprocessing as mp
    import time

    from interp.io import RunLock, atomic_write_json, atomic_write_text

    if workers < 1:
        raise InterpError(f"workers must be >= 1, got {workers}")
    if cfg.engine == "stockfish" and find_stockfish(cfg.stockfish_path) is None:
        raise InterpError(f"stockfish binary {cfg.stockfish_path!r} not found; `apt-get install -y stockfish` or use engine=random")
    root = default_store_root() if root is None else Path(root)
    store = root / cfg.store_name()
    if store.exists() and not store.is_dir():
        raise InterpError(f"game store {store} is a file; give another --store")
    settings = {k: v for k, v in asdict(cfg).items() if k != "n_games"}
    with RunLock(store, "game store"):
        man = _read_manifest(store) if (store / STORE_MARKER).exists() else \
            {"kind": "interp-chess-games", "settings": settings, "chunk_size": CHUNK, "chunks": {}}
        if {k: v for k, v in man["settings"].items() if k != "stockfish_path"} != \
                {k: v for k, v in settings.items() if k != "stockfish_path"} or man["chunk_size"] != CHUNK:
            raise InterpError(f"game store {store} was made with other settings {man['settings']}; remove it or use another root")
        good = _good_chunks(store, man)
        man["chunks"] = {k: v for k, v in man["chunks"].items() if int(k) in good}
        need = [c for c in range(-(-cfg.n_games // CHUNK)) if c not in good]
        total = -(-cfg.n_games // CHUNK)
        t0, made = time.perf_counter(), 0
        if need:
            # random games are cheap: spawning processes (each re-importing the caller) costs more than it saves
            workers = 1 if cfg.engine == "random" else min(workers, len(need))
            log.info("generating %d chunk(s) of %d %s games with %d worker(s) into %s", len(need), CHUNK, cfg.engine, workers, store)
            ctx = mp.get_context("spawn")
            sf = cfg.stockfish_path if cfg.engine == "stockfish" else None
            jobs = [(cfg, c) for c in need]
            pool = ctx.Pool(workers, initializer=_worker_init, initargs=(sf,)) if workers > 1 else None
            old_term = _exit_on_sigterm()  # so `kill PID` stops the workers too (the finally runs)
            try:
                it = pool.imap_unordered(_worker_chunk, jobs) if pool else map(_worker_chunk, jobs)
                if pool is None:
                    _worker_init(sf, in_worker=False)
                bar = tqdm(it, total=len(need), desc=f"{cfg.engine} game chunks", leave=False)
                for c, games in bar:
                    p = _chunk_path(store, c)
                    atomic_write_text(p, "\n".join(games) + "\n")
                    from interp.io import sha256_file

                    man["chunks"][str(c)] = {"n": len(games), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
                    atomic_write_json(store / STORE_MARKER, man)
                    made += len(games)
                    if progress is not None:
                        progress(len(man["chunks"]), total)
            finally:
                if old_term is not None:
                    signal.signal(signal.SIGTERM, old_term)
                if pool is not None:
                    pool.terminate()
                    pool.join()
                else:
                    global _WORKER_ENGINE
                    if _WORKER_ENGINE is not None:
                        _WORKER_ENGINE.quit()
                        _WORKER_ENGINE = None
        secs = time.perf_counter() - t0
    n_avail = 0
    while str(n_avail // CHUNK) in man["chunks"]:
        n_avail += CHUNK
    return GameStore(store, n_avail, made / secs if made else 0.0)


def read_game_store(store: str | Path, n_games: int | None = None, verify: bool = True) -> list[str]:
    """The first `n_games` games of a store (all complete chunks if None); one-line error if it has fewer."""
    store = Path(store)
    if not (store / STORE_MARKER).is_file():
        raise InterpError(f"{store} is not a chess game store (no {STORE_MARKER})")
    man = _read_manifest(store)
    good = _good_chunks(store, man) if verify else {int(k) for k in man["chunks"]}
    games: list[str] = []
    c = 0
    while c in good and (n_games is None or len(games) < n_games):
        games.extend(_chunk_path(store, c).read_text().splitlines())
        c += 1
    if n_games is not None and len(games) < n_games:
        raise InterpError(f"{store} holds {len(games)} complete games, fewer than the {n_games} asked for; "
                          f"generate more with `interp moex games --n {n_games}`")
    return games if n_games is None else games[:n_games]


def load_or_generate(cfg: ChessDataConfig, root: str | Path | None = None, workers: int = 1) -> list[str]:
    """Games 0 .. n_games - 1 for `cfg`, from the store under `root` (default `user_data_dir('chess')`),
    generated first where missing. A store that already holds them is only read (no lock), so
    training can start while a generator is still adding games to the same store; asking a locked
    store for more games than it holds is one line that says how many it holds now."""
    store = (default_store_root() if root is None else Path(root)) / cfg.store_name()
    have = 0
    if (store / STORE_MARKER).is_file():
        man = _read_manifest(store)
        if all(str(c) in man["chunks"] for c in range(-(-cfg.n_games // CHUNK))):
            with contextlib.suppress(InterpError):  # a damaged chunk: fall through to regeneration
                return read_game_store(store, cfg.n_games)
        while str(have // CHUNK) in man["chunks"]:
            have += CHUNK
    try:
        gs = build_game_store(cfg, root, workers=workers)
    except InterpError as e:
        if not (store / ".lock").is_file():  # not a generator at work: the error as it is
            raise
        raise InterpError(f"{e}; it holds {have} complete games now, fewer than the {cfg.n_games} asked for, "
                          f"so ask for at most {have} or wait") from None
    return read_game_store(gs.path, cfg.n_games)


_MOVE_NUMBER = re.compile(r"(\d+)\.")


class ParsedGame(NamedTuple):
    text: str
    dot_positions: list[int]
    """character index of each '.' that precedes a white move"""
    boards: list[chess.Board]
    """the board at each of those positions (white to move)"""


def parse_game(text: str) -> ParsedGame:
    """Replay a PGN string; an illegal or malformed move (or a cut-off last move) ends the parse there.

    Raises `InterpError` when the string is not a game at all (no leading ';' or an illegal first move).
    """
    if not text.startswith(";"):
        raise InterpError("a game string must start with ';'")
    board = chess.Board()
    dots, boards = [], []
    tokens = text[1:].split(" ")
    pos = 1
    for tok in tokens:
        start = pos
        pos += len(tok) + 1
        if not tok:
            continue
        m = _MOVE_NUMBER.match(tok)
        if not m and tok.isdigit() and pos >= len(text):
            break  # a move number cut off by the length limit
        if m:
            if board.turn != chess.WHITE or int(m.group(1)) != board.fullmove_number:
                raise InterpError(f"move number {m.group(1)} out of order at character {start}")
            dots.append(start + m.end() - 1)
            boards.append(board.copy(stack=False))
            san = tok[m.end():]
        else:
            san = tok
        if not san:
            break
        try:
            board.push_san(san)
        except ValueError:
            if pos >= len(text) and any(board.san(m).startswith(san) for m in board.legal_moves):
                break  # the last move, cut off by the length limit
            raise InterpError(f"illegal or malformed move {san!r} at character {start}") from None
    if not dots:
        raise InterpError("no white move found in the game string")
    return ParsedGame(text, dots, boards)


class CleanGames(NamedTuple):
    games: list[str]
    skipped: int
    reasons: list[str]
    """the first few reasons, for the user"""


def clean_games(lines: list[str]) -> CleanGames:
    """Keep the lines that are legal games (stripped); skip and count the rest."""
    keep, reasons = [], []
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            encode(line)
            parse_game(line)
        except InterpError as e:
            reasons.append(f"line {i + 1}: {e}")
            continue
        keep.append(line)
    skipped = len(reasons)
    if skipped:
        log.warning("skipped %d illegal PGN line(s); first: %s", skipped, reasons[0])
    return CleanGames(keep, skipped, reasons[:5])


def read_pgn_lines(path: str | Path) -> CleanGames:
    """Games from a text file, one PGN string per line; illegal lines are skipped and counted."""
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"no such games file: {p}")
    data = p.read_bytes()
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InterpError(f"{p} is not a text file of PGN lines (binary content); give one game per line, e.g. ';1.e4 e5 2.Nf3'") from None
    res = clean_games(text.splitlines())
    if not res.games:
        raise InterpError(f"{p} holds no legal game ({res.skipped} line(s) skipped; first: {res.reasons[0] if res.reasons else 'empty file'})")
    return res


def board_to_classes(board: chess.Board) -> np.ndarray:
    """[64] int8: the class index (see `PIECE_CLASSES`) of the piece on each square a1..h8."""
    out = np.zeros(64, dtype=np.int8)
    for sq, piece in board.piece_map().items():
        out[sq] = PIECE_CLASSES.index(piece.symbol())
    return out


def board_extras(board: chess.Board) -> np.ndarray:
    """[len(EXTRA_PROPERTIES)] bool: check, white pin, castling rights."""
    pin = any(board.is_pinned(chess.WHITE, sq) for sq in chess.SquareSet(board.occupied_co[chess.WHITE]))
    return np.array([
        board.is_check(), pin,
        board.has_kingside_castling_rights(chess.WHITE), board.has_queenside_castling_rights(chess.WHITE),
        board.has_kingside_castling_rights(chess.BLACK), board.has_queenside_castling_rights(chess.BLACK),
    ], dtype=bool)


class BoardProperties(NamedTuple):
    game_index: np.ndarray
    """[N] which game each position belongs to"""
    char_index: np.ndarray
    """[N] index of the '.' character in that game's string"""
    squares: np.ndarray
    """[N, 64] int8 class of each square (0 = empty)"""
    extras: np.ndarray
    """[N, len(EXTRA_PROPERTIES)] bool"""

    def one_hot(self) -> np.ndarray:
        """[N, 64 * 13] bool: property (square s, class c) is column s * 13 + c."""
        n = len(self.squares)
        out = np.zeros((n, 64, len(PIECE_CLASSES)), dtype=bool)
        out[np.arange(n)[:, None], np.arange(64)[None, :], self.squares] = True
        return out.reshape(n, -1)


def board_properties(games: list[str], max_char: int | None = None) -> BoardProperties:
    """Board state at every '.' before a white move (only '.' at index < `max_char` if given)."""
    gi, ci, sq, ex = [], [], [], []
    for g, text in enumerate(games):
        parsed = parse_game(text)
        for dot, board in zip(parsed.dot_positions, parsed.boards):
            if max_char is not None and dot >= max_char:
                break
            gi.append(g)
            ci.append(dot)
            sq.append(board_to_classes(board))
            ex.append(board_extras(board))
    if not gi:
        raise InterpError("no positions found in the games")
    return BoardProperties(np.array(gi), np.array(ci), np.stack(sq), np.stack(ex))


def property_names() -> list[str]:
    """Names of the `one_hot` columns: e.g. 'e4:P'."""
    return [f"{chess.square_name(s)}:{c}" for s in range(64) for c in PIECE_CLASSES]
