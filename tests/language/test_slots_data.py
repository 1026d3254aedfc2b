from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import hivemesh.language.slots

DATA = Path(hivemesh.language.slots.__file__).parent.parent / "data" / "intents.json"
INTENTS = {
    "calculator", "unit_conversion", "current_time", "weekday", "date_arithmetic", "days_between",
    "set_timer", "set_reminder", "list_add", "list_remove", "list_show", "list_clear", "roll_dice",
    "flip_coin", "spell", "remember", "recall", "weather", "play_music", "book_flight", "send_email",
    "greeting", "oos",
}  # fmt: skip


def load() -> dict[str, list[list[str]]]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_intents_data_has_exactly_the_shared_intents_with_enough_examples() -> None:
    data = load()
    assert set(data) == {"train", "val"}
    for split, least in (("train", 40), ("val", 10)):
        for row in data[split]:
            assert len(row) == 2
            assert all(isinstance(x, str) and x.strip() for x in row)
        counts = Counter(intent for _, intent in data[split])
        assert set(counts) == INTENTS
        assert min(counts.values()) >= least, counts
    assert Counter(i for _, i in data["train"])["oos"] > 60


def test_val_does_not_repeat_train() -> None:
    data = load()
    train = {text.lower() for text, _ in data["train"]}
    assert not [text for text, _ in data["val"] if text.lower() in train]
