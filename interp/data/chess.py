"""Chess games as character-level PGN strings, and the board state behind every white move.

A game is one string in the style of Karvonen et al. (2024): ``";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6"``
(no spaces after the move number, a leading ``;``). Games come from

* ``engine="random"`` (default, needs nothing): a weighted-random legal-move player that prefers
  captures, checks, castling and developing moves, with a per-game temperature, so games look
  less like noise than uniform random play;
* ``engine="stockfish"``: self-play of the Stockfish binary (Debian package ``stockfish``:
  ``apt-get install -y stockfish``) at a per-game skill level, choosing at random among its
  MultiPV candidates now and then. Node-limited search with one thread, so it is deterministic.

Both are deterministic by seed, and `load_or_generate` caches games on disk as JSON (atomic).

Board-state properties (`board_properties`) are computed with python-chess at each ``'.'`` of a
move number, i.e. just before a white move: the piece on every square as one of 13 classes
(`PIECE_CLASSES`, index 0 = empty), whether the side to move is in check, whether white has a
pinned piece, and the four castling rights.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
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
DEFAULT_CACHE = Path("runs/chess")


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
    """games are a pure function of (engine, seed, index)"""
    max_chars: int = 257
    """stop a game once its string reaches this length (a model sees n_ctx + 1 characters)"""
    engine: str = "random"
    """random (weighted-random legal moves) or stockfish (needs the `stockfish` binary)"""
    stockfish_path: str = "stockfish"
    """binary name or path for engine=stockfish"""
    stockfish_nodes: int = 2000
    """node limit per Stockfish move (deterministic, fast)"""

    def __post_init__(self):
        if self.n_games < 1:
            raise InterpError("n_games must be >= 1")
        if self.max_chars < 8:
            raise InterpError("max_chars must be >= 8")
        if self.engine not in ("random", "stockfish"):
            raise InterpError(f"unknown chess engine {self.engine!r}; use random or stockfish")

    def cache_name(self) -> str:
        return f"{self.engine}_s{self.seed}_n{self.n_games}_c{self.max_chars}.json"


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


def stockfish_games(cfg: ChessDataConfig) -> list[str]:
    """Stockfish self-play: per game a skill level in 0..20, and 1 in 5 moves drawn from MultiPV 3."""
    import chess.engine

    binary = find_stockfish(cfg.stockfish_path)
    if binary is None:
        raise InterpError(f"stockfish binary {cfg.stockfish_path!r} not found; `apt-get install -y stockfish` or use engine=random")
    games = []
    with chess.engine.SimpleEngine.popen_uci(binary) as eng:
        eng.configure({"Threads": 1, "Hash": 16})
        for i in tqdm(range(cfg.n_games), desc="stockfish games", leave=False):
            rng = random.Random(cfg.seed * 1_000_003 + i)
            eng.configure({"Skill Level": rng.randint(0, 20)})
            board, text = chess.Board(), ";"
            while not board.is_game_over(claim_draw=False) and len(text) < cfg.max_chars:
                infos = eng.analyse(board, chess.engine.Limit(nodes=cfg.stockfish_nodes), multipv=3, game=i)
                cands = [inf["pv"][0] for inf in infos if inf.get("pv")]
                move = rng.choice(cands) if rng.random() < 0.2 else cands[0]
                text = _append_move(text, board, move)
                board.push(move)
            games.append(text[: cfg.max_chars])
    return games


def generate_games(cfg: ChessDataConfig) -> list[str]:
    if cfg.engine == "stockfish":
        return stockfish_games(cfg)
    return [random_game(random.Random(cfg.seed * 1_000_003 + i), cfg.max_chars)
            for i in tqdm(range(cfg.n_games), desc="chess games", leave=False)]


def load_or_generate(cfg: ChessDataConfig, cache_dir: str | Path = DEFAULT_CACHE) -> list[str]:
    """Games for `cfg`, read from `cache_dir` if generated before, else generated and cached (atomic)."""
    path = Path(cache_dir) / cfg.cache_name()
    if path.exists():
        return json.loads(path.read_text())["games"]
    games = generate_games(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"config": asdict(cfg), "games": games}))
    tmp.replace(path)
    return games


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
    return clean_games(p.read_text().splitlines())


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
