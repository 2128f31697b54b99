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


# Paraphrase templates say the same four facts (who, which animal, what, where) in different
# words and order. They use only words of the stories above, so the smoke tokenizer (trained on
# the stories) keeps every word whole: pairs are ~29 tokens and the backbone knows every word.
TEMPLATES = (
    "{name} found a {obj} in the {place} with the {animal}.",
    "in the {place} {name} and the {animal} found a {obj}.",
    "one day the {animal} and {name} found a {obj} in the {place}.",
    "there was a {obj} in the {place}. {name} found the {obj} with the {animal}.",
)
# Same participants, another event: a non-paraphrase that shares every content word.
OTHER_EVENT = (
    "{name} showed the {obj} to the {animal} in the {place}.",
    "in the {place} {name} and the {animal} played with the {obj}.",
)
SLOTS = {"name": NAMES, "animal": ANIMALS, "obj": OBJECTS, "place": PLACES}
# Of the negatives, this share tells another event and the rest change every slot. Spotting
# another event needs no comparison of the two sentences, so a 1M-parameter model beats the
# majority class after a few dozen steps (what keeps the smoke preset's fine-tunes short);
# the changed-slot negatives still need it to match the sentences to get the rest right.
OTHER_EVENT_SHARE = 2 / 3


def _fill(template: str, facts: dict[str, int]) -> str:
    return template.format(**{k: SLOTS[k][i] for k, i in facts.items()})


def synthetic_pairs(n: int, seed: int) -> list[tuple[str, str, int]]:
    """Paraphrase pairs (sentence1, sentence2, label); about two thirds positive, like MRPC.

    Positives restate the same facts with another template (word order and wording change);
    negatives tell another event about the same participants, or change every slot.
    """
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        facts = {k: rng.randrange(len(pool)) for k, pool in SLOTS.items()}
        t1, t2 = rng.sample(range(len(TEMPLATES)), 2)
        label = int(rng.random() < 0.67)
        if label:
            s2 = _fill(TEMPLATES[t2], facts)
        elif rng.random() < OTHER_EVENT_SHARE:
            s2 = _fill(rng.choice(OTHER_EVENT), facts)
        else:
            other = {k: (i + rng.randrange(1, len(SLOTS[k]))) % len(SLOTS[k]) for k, i in facts.items()}
            s2 = _fill(TEMPLATES[t2], other)
        pairs.append((_fill(TEMPLATES[t1], facts), s2, label))
    return pairs
