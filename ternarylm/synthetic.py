"""A built-in, deterministic synthetic corpus and paraphrase task (no copied text).

Lets the ``smoke`` preset run every stage offline on any machine. Stories are generated from
small word lists with a fixed grammar, so a tiny model can learn them in a few hundred steps;
the paraphrase pairs mirror MRPC's format (sentence1, sentence2, label).
"""

from __future__ import annotations

import random

NAMES = ["tom", "lily", "max", "mia", "ben", "sue", "sam", "anna", "leo", "zoe"]
ANIMALS = ["cat", "dog", "bird", "fox", "rabbit", "bear", "duck", "frog", "mouse", "horse"]
ADJS = ["little", "happy", "brave", "small", "kind", "big", "shy", "funny", "red", "sleepy"]
PLACES = ["park", "garden", "forest", "house", "river", "school", "farm", "beach", "hill", "town"]
OBJECTS = ["ball", "box", "hat", "cake", "book", "kite", "toy", "apple", "boat", "flower"]
VERBS = ["play", "run", "sing", "jump", "read", "dance", "swim", "paint", "walk", "dream"]
FEELINGS = ["happy", "glad", "proud", "excited", "calm", "thankful"]

# paraphrase task vocabulary: each slot has synonyms that keep the meaning
SUBJECTS = [
    ("the man", "the gentleman"),
    ("the girl", "the young lady"),
    ("the teacher", "the instructor"),
    ("the doctor", "the physician"),
    ("the boy", "the lad"),
    ("the company", "the firm"),
    ("the city", "the town council"),
    ("the team", "the squad"),
]
ACTIONS = [
    ("bought", "purchased"),
    ("sold", "traded away"),
    ("fixed", "repaired"),
    ("found", "discovered"),
    ("built", "constructed"),
    ("started", "began"),
    ("closed", "shut"),
    ("needed", "required"),
]
THINGS = [
    ("a car", "an automobile"),
    ("a house", "a home"),
    ("the shop", "the store"),
    ("a gift", "a present"),
    ("the road", "the street"),
    ("a boat", "a ship"),
    ("the plan", "the scheme"),
    ("a bike", "a bicycle"),
]
TIMES = [
    ("on monday", "at the start of the week"),
    ("last year", "a year ago"),
    ("yesterday", "the day before"),
    ("in the morning", "before noon"),
    ("at night", "after dark"),
    ("in march", "during march"),
]


def synthetic_story(rng: random.Random) -> str:
    name, animal, adj = rng.choice(NAMES), rng.choice(ANIMALS), rng.choice(ADJS)
    place, obj, verb = rng.choice(PLACES), rng.choice(OBJECTS), rng.choice(VERBS)
    friend, feeling = rng.choice([n for n in NAMES if n != name]), rng.choice(FEELINGS)
    return (
        f"once upon a time there was a {adj} {animal} named {name}. "
        f"{name} liked to {verb} in the {place}. "
        f"one day {name} found a {obj} in the {place}. "
        f"{name} showed the {obj} to {friend}. "
        f"{friend} and {name} played with the {obj} all day. "
        f"{name} the {animal} felt very {feeling}. the end."
    )


def synthetic_corpus(n_docs: int, seed: int) -> list[str]:
    """``n_docs`` stories; the same (n_docs, seed) always gives the same list."""
    rng = random.Random(seed)
    return [synthetic_story(rng) for _ in range(n_docs)]


def _sentence(slots: tuple[int, int, int, int], alt: tuple[bool, bool, bool, bool], passive: bool) -> str:
    s, a, t, w = (pool[i][int(flag)] for pool, i, flag in zip((SUBJECTS, ACTIONS, THINGS, TIMES), slots, alt))
    if passive:
        return f"{w}, {t} was {a} by {s}."
    return f"{s} {a} {t} {w}."


def synthetic_pairs(n: int, seed: int) -> list[tuple[str, str, int]]:
    """Paraphrase pairs (sentence1, sentence2, label); about two thirds positive, like MRPC.

    Positives say the same thing with synonyms and/or word order changed; negatives change every
    content slot, so the label is decidable from the words.
    """
    rng = random.Random(seed)
    sizes = (len(SUBJECTS), len(ACTIONS), len(THINGS), len(TIMES))
    pairs = []
    for _ in range(n):
        slots = tuple(rng.randrange(k) for k in sizes)
        s1 = _sentence(slots, (False,) * 4, passive=False)
        label = int(rng.random() < 0.67)
        if label:
            other = slots
        else:
            other = tuple((i + rng.randrange(1, k)) % k for i, k in zip(slots, sizes))
        alt = tuple(rng.random() < 0.5 for _ in range(4))
        s2 = _sentence(other, alt, passive=rng.random() < 0.5)
        pairs.append((s1, s2, label))
    return pairs
