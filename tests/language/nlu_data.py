"""A tiny intents data set written for the tests: a few intents and some out-of-scope requests; and
deliberately worse routers."""

from __future__ import annotations

import json
from pathlib import Path

from hivemesh.language.models import SHIPPED_INTENTS
from hivemesh.language.nlu.dataset import load_splits
from hivemesh.language.nlu.training import fit_router

TRAIN = {
    "set_timer": [
        "set a timer for 5 minutes",
        "start a 10 minute timer",
        "timer for twenty seconds please",
        "can you set a timer for one hour",
        "put a timer on for 3 minutes",
        "count down 2 minutes",
        "start a countdown of 15 minutes",
        "set timer 30 seconds",
        "i need a timer for the pasta",
        "timer please, 8 minutes",
    ],
    "weather": [
        "what is the weather like today",
        "will it rain tomorrow",
        "how hot is it outside",
        "is it going to snow this weekend",
        "weather forecast for paris",
        "do i need an umbrella today",
        "how cold will it be tonight",
        "what's the temperature outside",
        "is it sunny in madrid",
        "tell me the forecast",
    ],
    "list_add": [
        "add eggs to my shopping list",
        "put milk on the grocery list",
        "add bread to the list",
        "please add apples to my shopping list",
        "can you put butter on my list",
        "add call mom to my todo list",
        "shopping list add cheese",
        "put batteries on the list",
        "add tomatoes to groceries",
        "remember to add rice to the shopping list",
    ],
    "oos": [
        "what is the meaning of life",
        "who won the world cup in 1998",
        "how do i fix a flat bike tire",
        "tell me about the roman empire",
        "what's a good name for a cat",
    ],
}
VAL = [
    ["set a timer for 12 minutes", "set_timer"],
    ["start a five minute countdown", "set_timer"],
    ["is it raining in london", "weather"],
    ["what's the forecast for tomorrow", "weather"],
    ["add onions to my shopping list", "list_add"],
    ["put coffee on the grocery list", "list_add"],
    ["how many moons does jupiter have", "oos"],
    ["recommend a novel to read", "oos"],
]


def write_dataset(path: Path) -> Path:
    rows = [[text, intent] for intent, texts in TRAIN.items() for text in texts]
    path.write_text(json.dumps({"train": rows, "val": VAL}))
    return path


def write_router_without(intents: set[str], out: Path) -> Path:
    """A lexical router trained on hivemesh's shipped intents minus ``intents``: it answers those
    requests with some other intent (or out of scope), a worse router on purpose."""
    splits = load_splits(SHIPPED_INTENTS)
    train = [(e.text, e.intent) for e in splits["train"] if e.intent not in intents]
    calibration = [(e.text, e.intent) for e in splits["val"] if e.intent not in intents]
    fit_router(train, calibration).save(out)
    return out
