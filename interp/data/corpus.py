"""The embedded world corpus: deterministic, seeded, generated text with checkable patterns.

It mixes five kinds of text so that one small model learns the behaviours the rest of the
toolkit studies:

* indirect-object narratives (IOI): "When Mary and John went to the store, John gave a drink to" -> " Mary"
* year spans (greater-than): "... from the year 1732 to the year 17" -> a two-digit year > 32
* Python functions with `:param` docstrings (docstring): the next `:param` names the next argument
* facts about six concept categories (colors, animals, sports, emotions, materials, foods)
* plain connecting sentences, so documents read like text rather than a list of templates

Every generator takes a `random.Random`, so the same seed always yields the same text.
Task prompts for evaluation (`ioi_prompts`, `year_prompts`, `docstring_prompts`, `fact_prompts`)
come from the same templates; held-out sets use a different seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

EOT = "<|endoftext|>"

NAMES = (
    "Mary John Tom James Anna Sarah David Paul Mark Lisa Emma Jack Kate Alice Bob Peter Laura "
    "Susan Daniel Michael Robert Linda Karen Steve Kevin Brian Jason Amy Ruth Helen Frank Henry "
    "George Adam Emily Grace Rose Jane Ben Sam Max Leo Lucy Nina Oscar Ryan Sean Ian Eric Carl "
    "Dean Fred Greg Hugo Ivan Joel Kyle Luke Matt Neil Owen Tony Victor Will Zoe"
).split()

# (place clause, object given) pairs; {A} {B} are the two people, {S} the repeated subject.
IOI_TEMPLATES = (
    "When {A} and {B} went to the store, {S} gave a drink to",
    "When {A} and {B} went to the park, {S} handed a ball to",
    "After {A} and {B} arrived at the house, {S} gave a book to",
    "While {A} and {B} were working at the office, {S} passed a note to",
    "Then {A} and {B} had a long walk in the garden, and {S} gave a flower to",
    "When {A} and {B} got a snack at the market, {S} offered an apple to",
    "After the meeting, {A} and {B} stayed late, and {S} sent a letter to",
    "Friends {A} and {B} found a bone at the beach. {S} threw it to",
    "At the school, {A} and {B} were talking, and {S} showed a picture to",
    "When {A} and {B} visited the museum, {S} bought a ticket for",
    "Yesterday {A} and {B} cooked dinner together, and {S} served the soup to",
    "On Sunday {A} and {B} went to the river, and {S} gave a fish to",
    "When {A} and {B} met at the station, {S} lent an umbrella to",
    "After {A} and {B} finished the game, {S} gave the prize to",
    "In the morning {A} and {B} went to the bakery, and {S} gave a cake to",
    "During the trip {A} and {B} got lost, and {S} gave the map to",
    "Later {A} and {B} played music at the hall, and {S} gave a guitar to",
    "When {A} and {B} cleaned the kitchen, {S} handed a cup to",
)

YEAR_TEMPLATES = (
    "The war lasted from the year {Y1} to the year {Y2}.",
    "The king ruled from the year {Y1} to the year {Y2}.",
    "The bridge was built from the year {Y1} to the year {Y2}.",
    "The drought lasted from the year {Y1} to the year {Y2}.",
    "The school was open from the year {Y1} to the year {Y2}.",
    "The expedition ran from the year {Y1} to the year {Y2}.",
    "The famine lasted from the year {Y1} to the year {Y2}.",
    "The treaty held from the year {Y1} to the year {Y2}.",
)

ARG_NAMES = (
    "name size count value index path mode text data key width height color speed limit "
    "source target label offset scale weight order level token score image model config file "
    "user group price amount start end step depth radius angle"
).split()
FUNC_VERBS = "load save draw parse build compute update render check merge split send fetch sort".split()
FUNC_NOUNS = "item table graph list record frame block shape page layer node field".split()
PARAM_WORDS = (
    "the first input|the number of items|the value to use|the target object|an optional flag|"
    "the size of the output|the name of the file|how many steps to take|the current state|"
    "the base value"
).split("|")

# Six concept categories: (description, answer) facts and completion templates ending right
# before the answer. The last template of each category is the "paraphrase" phrasing.
FACTS: dict[str, list[tuple[str, str]]] = {
    "colors": [
        ("a ripe banana", "yellow"), ("the clear sky", "blue"), ("fresh grass", "green"),
        ("fresh snow", "white"), ("a lump of coal", "black"), ("a ripe tomato", "red"),
        ("a carrot", "orange"), ("an eggplant", "purple"), ("a lemon", "yellow"),
        ("the deep sea", "blue"), ("a pine tree", "green"), ("a glass of milk", "white"),
        ("a crow", "black"), ("a fire truck", "red"), ("a pumpkin", "orange"),
        ("a grape", "purple"), ("a school bus", "yellow"), ("a blueberry", "blue"),
        ("a frog", "green"), ("a cloud", "white"), ("the night sky", "black"),
        ("a strawberry", "red"), ("a tangerine", "orange"), ("a violet", "purple"),
        ("a chocolate bar", "brown"), ("a tree trunk", "brown"), ("a pink flamingo", "pink"),
        ("a piece of bubble gum", "pink"), ("an elephant", "gray"), ("a rain cloud", "gray"),
        ("a sunflower", "yellow"), ("a cherry", "red"),
    ],
    "animals": [
        ("says moo", "cow"), ("barks at strangers", "dog"), ("says meow", "cat"),
        ("has a long trunk", "elephant"), ("has black and white stripes", "zebra"),
        ("has a very long neck", "giraffe"), ("hops and carries its baby in a pouch", "kangaroo"),
        ("lays eggs and clucks", "chicken"), ("has a mane and roars", "lion"),
        ("swims and has gills", "fish"), ("says oink", "pig"), ("gives us wool", "sheep"),
        ("spins a web", "spider"), ("makes honey", "bee"), ("has eight arms", "octopus"),
        ("hoots at night", "owl"), ("carries its house on its back", "snail"),
        ("is the largest animal in the sea", "whale"), ("has a shell and moves slowly", "turtle"),
        ("quacks on the pond", "duck"), ("neighs and can be ridden", "horse"),
        ("has long ears and eats carrots", "rabbit"), ("climbs trees and eats bananas", "monkey"),
        ("slithers and has no legs", "snake"), ("has orange fur and black stripes", "tiger"),
        ("sleeps all winter in a cave", "bear"), ("squeaks and likes cheese", "mouse"),
        ("is a bird that cannot fly and lives on ice", "penguin"), ("howls at the moon", "wolf"),
        ("has a hump and lives in the desert", "camel"), ("croaks near the pond", "frog"),
        ("has a bushy tail and collects nuts", "squirrel"),
    ],
    "sports": [
        ("with a racket and a small yellow ball", "tennis"), ("by kicking a ball into a goal", "soccer"),
        ("by throwing a ball through a hoop", "basketball"), ("with a bat, a glove and four bases", "baseball"),
        ("by hitting a small ball into eighteen holes", "golf"), ("on ice with sticks and a puck", "hockey"),
        ("with a bat and wickets", "cricket"), ("with an oval ball and scrums", "rugby"),
        ("by hitting a ball over a high net with the hands", "volleyball"), ("with gloves in a ring", "boxing"),
        ("in a pool with laps and strokes", "swimming"), ("down snowy mountains on two boards", "skiing"),
        ("on ocean waves with a board", "surfing"), ("on a bicycle in a race", "cycling"),
        ("in a boat with oars", "rowing"), ("with thin swords and masks", "fencing"),
        ("with a bow and arrows", "archery"), ("by rolling a heavy ball at ten pins", "bowling"),
        ("by pinning an opponent on a mat", "wrestling"), ("in a boat pushed by the wind", "sailing"),
        ("with a shuttlecock and light rackets", "badminton"), ("on horses with long mallets", "polo"),
        ("by sliding stones on ice", "curling"), ("with a small ball against a wall in a court", "squash"),
        ("with paddles on a small green table", "pingpong"), ("by jumping from a high board into water", "diving"),
        ("up steep rock walls with ropes", "climbing"), ("with kicks and punches in white uniforms", "karate"),
        ("by throwing and holding in a soft uniform", "judo"), ("on a track in laps as fast as possible", "running"),
        ("with a ball thrown by hand into a small goal", "handball"),
    ],
    "emotions": [
        ("receives a lovely gift", "happy"), ("loses a dear friend", "sad"),
        ("is treated unfairly", "angry"), ("hears a strange noise in the dark", "afraid"),
        ("wins a hard race", "proud"), ("waits for hours with nothing to do", "bored"),
        ("rests by a quiet lake", "calm"), ("sees a rival get the prize", "jealous"),
        ("has a big exam tomorrow", "nervous"), ("is helped by a stranger", "grateful"),
        ("finds a party waiting at home", "surprised"), ("has no one to talk to", "lonely"),
        ("is caught telling a lie", "ashamed"), ("is about to leave on a long trip", "excited"),
        ("learns that the danger has passed", "relieved"), ("reads instructions that make no sense", "confused"),
        ("smells rotten food", "disgusted"), ("sees the sun after a storm", "hopeful"),
        ("works all night without sleep", "tired"), ("gets a warm hug from a parent", "loved"),
        ("hears a joke at a party", "amused"), ("breaks a friend's favorite cup", "guilty"),
        ("is praised in front of the class", "proud"), ("misses the last train home", "upset"),
        ("stands alone on a high bridge", "afraid"), ("gets the job of their dreams", "happy"),
        ("watches a sad film", "sad"), ("has a fight with a neighbor", "angry"),
        ("waits in a long line", "bored"), ("hears footsteps behind them at night", "nervous"),
        ("forgets the name of a friend", "embarrassed"),
    ],
    "materials": [
        ("a window", "glass"), ("a coin", "metal"), ("a candle", "wax"), ("a brick", "clay"),
        ("a tire", "rubber"), ("a sweater", "wool"), ("a table", "wood"), ("a bottle", "glass"),
        ("a nail", "steel"), ("a shirt", "cotton"), ("a book", "paper"), ("a boot", "leather"),
        ("a statue", "stone"), ("a mirror", "glass"), ("a spoon", "metal"), ("a chair", "wood"),
        ("a sail", "canvas"), ("a ring", "gold"), ("a pipe", "copper"), ("a bag", "plastic"),
        ("a scarf", "silk"), ("a can", "tin"), ("a box", "cardboard"), ("a road", "concrete"),
        ("a basket", "straw"), ("a pencil", "wood"), ("a jacket", "leather"), ("a sword", "steel"),
        ("a vase", "clay"), ("a cork", "bark"), ("a rope", "hemp"), ("a blanket", "wool"),
    ],
    "foods": [
        ("a round dish of dough with cheese and tomato on top", "pizza"),
        ("a loaf baked from flour and yeast", "bread"), ("a food made from curdled milk", "cheese"),
        ("long thin strips of dough boiled in water", "pasta"), ("small white grains boiled in water", "rice"),
        ("a frozen sweet made from cream", "icecream"), ("a bowl of broth with vegetables", "soup"),
        ("fresh leaves mixed with dressing", "salad"), ("meat between two halves of a bun", "burger"),
        ("a sweet baked for birthdays with candles", "cake"), ("thin strips of fried potato", "fries"),
        ("raw fish on rice rolled in seaweed", "sushi"), ("a flat round cake cooked in a pan for breakfast", "pancake"),
        ("a round cake with a hole in the middle", "donut"), ("a thick creamy food made from milk and cultures", "yogurt"),
        ("a sweet spread made by bees", "honey"), ("a spicy dish of meat and beans", "chili"),
        ("a folded tortilla with meat inside", "taco"), ("a sausage in a long bun", "hotdog"),
        ("a thick slice of grilled beef", "steak"), ("eggs beaten and cooked flat with fillings", "omelet"),
        ("a crisp baked sweet with chocolate chips", "cookie"), ("oats cooked in milk for breakfast", "porridge"),
        ("a pastry filled with fruit and baked in a dish", "pie"), ("bread slices with filling in between", "sandwich"),
        ("a curved crescent pastry made with butter", "croissant"), ("a sweet made from cocoa", "chocolate"),
        ("a snack that pops from corn kernels", "popcorn"), ("a dip made from mashed avocado", "guacamole"),
        ("a dish of rice cooked with saffron and seafood", "paella"), ("a dumpling filled with meat and steamed", "dumpling"),
    ],
}

FACT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "colors": ("The color of {d} is", "Everyone knows that {d} is colored", "If you look at {d}, the color you see is"),
    "animals": ("The animal that {d} is the", "Which animal {d}? It is the", "A child asked which animal {d}, and the answer was the"),
    "sports": ("The sport played {d} is", "A game played {d} is called", "My cousin likes the sport played {d}, which is"),
    "emotions": ("When someone {d}, they feel", "A person who {d} usually feels", "Imagine that a friend {d}. The friend feels"),
    "materials": ("{D} is usually made of", "The material used to make {d} is", "If you build {d}, you use"),
    "foods": ("The food that is {d} is called", "People eat {d}, which is called", "At dinner we had {d}, also known as"),
}
CATEGORIES = tuple(FACTS)

FILLER = (
    "It was a quiet morning in the village.", "The weather was mild and the streets were calm.",
    "Later that day, everyone went home.", "Nobody said much after that.",
    "The town had a small library and an old bridge.", "Many people walked along the river in the evening.",
    "This is a story that people still tell.", "The teacher wrote a short note on the board.",
    "Some days were busy and some were slow.", "In the end, it was a good day.",
    "The old clock in the square struck noon.", "A cold wind came down from the hills.",
    "There was bread on the table and tea in the pot.", "The children laughed in the yard.",
    "It is worth remembering these simple things.", "A dog slept near the door.",
    "The lesson for today is about the world around us.", "Here are a few things that most people know.",
    "The night was long and full of stars.", "People in the city were always in a hurry.",
    "The shop opened early every day.", "History is full of long events.",
    "Here is a short piece of code from the project.", "The next part of the story is simple.",
)


@dataclass(frozen=True)
class Prompt:
    """One checkable completion: `text` is followed by `answer` (which starts with a space
    unless the task says otherwise); `meta` holds task-specific fields."""

    text: str
    answer: str
    meta: dict


def _year(rng: random.Random, century: int | None = None, lo: int = 2, hi: int = 98) -> tuple[int, int]:
    c = century if century is not None else rng.randint(11, 19)
    return c, rng.randint(lo, hi)


def ioi_sentence(rng: random.Random, template: int | None = None) -> Prompt:
    """An IOI prompt; the subject is repeated, the answer is the other (indirect object) name.
    Both name orders occur: the repeated name is the first (BABA) or second (ABBA) one."""
    a, b = rng.sample(NAMES, 2)  # a = indirect object, b = subject
    t = IOI_TEMPLATES[rng.randrange(len(IOI_TEMPLATES)) if template is None else template]
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    return Prompt(t.format(A=first, B=second, S=b), " " + a, {"io": a, "s": b, "template": t, "order": "ABBA" if first == a else "BABA"})


def year_sentence(rng: random.Random, lo: int = 2, hi: int = 98) -> Prompt:
    """Greater-than prompt: text ends at the century of the end year; answer is the end year's
    last two digits, strictly greater than the start year's."""
    c, yy = _year(rng, lo=lo, hi=hi)
    end = rng.randint(yy + 1, 99)
    t = rng.choice(YEAR_TEMPLATES)
    full = t.format(Y1=f"{c}{yy:02d}", Y2=f"{c}{end:02d}")
    cut = full.index(f"{c}{end:02d}") + 2
    return Prompt(full[:cut], f"{end:02d}", {"century": c, "start": yy, "end": end, "full": full})


def docstring_function(rng: random.Random, n_args: int | None = None) -> Prompt:
    """A Python function whose docstring lists `:param` for each argument in order. The prompt
    stops after the last `:param`; the answer is the last argument's name."""
    n = n_args or rng.randint(3, 5)
    args = rng.sample(ARG_NAMES, n)
    fname = f"{rng.choice(FUNC_VERBS)}_{rng.choice(FUNC_NOUNS)}"
    head = f"def {fname}(self, {', '.join(args)}):\n    \"\"\"{fname.replace('_', ' ').capitalize()}.\n\n"
    lines = [f"    :param {a}: {rng.choice(PARAM_WORDS)}\n" for a in args]
    prompt = head + "".join(lines[:-1]) + "    :param"
    return Prompt(prompt, " " + args[-1], {"args": args, "full": head + "".join(lines) + '    """\n    return None\n'})


def fact_prompt(category: str, index: int, template: int) -> Prompt:
    d, a = FACTS[category][index]
    t = FACT_TEMPLATES[category][template]
    return Prompt(t.format(d=d, D=d[0].upper() + d[1:]), " " + a, {"category": category, "fact": index, "template": template})


def _fact_sentence(rng: random.Random) -> str:
    cat = rng.choice(CATEGORIES)
    p = fact_prompt(cat, rng.randrange(len(FACTS[cat])), rng.randrange(len(FACT_TEMPLATES[cat])))
    return p.text + p.answer + "."


def document(rng: random.Random, code_frac: float = 0.15) -> str:
    """One document: a Python function (with probability `code_frac`), or prose mixing
    narratives, years, facts and filler."""
    if rng.random() < code_frac:
        return docstring_function(rng).meta["full"]
    parts = []
    for _ in range(rng.randint(3, 7)):
        r = rng.random()
        if r < 0.30:
            p = ioi_sentence(rng)
            parts.append(p.text + p.answer + ".")
        elif r < 0.50:
            parts.append(year_sentence(rng).meta["full"])
        elif r < 0.85:
            parts.append(_fact_sentence(rng))
        else:
            parts.append(rng.choice(FILLER))
    return " ".join(parts)


def generate_corpus(n_docs: int, seed: int = 0, code_frac: float = 0.15) -> list[str]:
    """`n_docs` documents, deterministic in `seed`; `code_frac` of them are Python functions."""
    rng = random.Random(seed)
    return [document(rng, code_frac) for _ in range(n_docs)]


def corpus_hash(docs: list[str]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(d.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


# ---- evaluation prompt sets (held-out: a seed the training corpus never uses) ----
HELDOUT_SEED = 10_000


def ioi_prompts(n: int, seed: int = HELDOUT_SEED) -> list[Prompt]:
    rng = random.Random(seed)
    return [ioi_sentence(rng) for _ in range(n)]


def year_prompts(n: int, seed: int = HELDOUT_SEED) -> list[Prompt]:
    rng = random.Random(seed)
    return [year_sentence(rng) for _ in range(n)]


def docstring_prompts(n: int, seed: int = HELDOUT_SEED) -> list[Prompt]:
    rng = random.Random(seed)
    return [docstring_function(rng) for _ in range(n)]


def fact_prompts(category: str, templates: tuple[int, ...] | None = None) -> list[Prompt]:
    """Every fact of `category` in each chosen template (all templates by default)."""
    if category not in FACTS:
        raise ValueError(f"unknown concept category {category!r}; known: {', '.join(CATEGORIES)}")
    ts = range(len(FACT_TEMPLATES[category])) if templates is None else templates
    return [fact_prompt(category, i, t) for t in ts for i in range(len(FACTS[category]))]
