"""The agent benchmark's task set: requests in plain words with the answers they must get.

Written for this project. Phrasings vary on purpose (numbers in words, unit typos, date formats,
short and long forms); expected values are computed here, not copied from the agent's output.
Every case runs as its own user, so lists and memories never leak between cases.

These cases are hivemesh's default eval suite: ``python -m benchmarks.agent --export
services/hivemesh/evaluation/suites/default.json`` writes them where ``hivemesh eval --cases
default`` reads them (a test checks that the two agree).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re

from hivemesh.evaluation.cases import OUT_OF_SCOPE, Case, Turn

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def words(n: int) -> str:
    """English words for 0 <= n < 1000."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, rest = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[rest]}" if rest else "")
    hundreds, rest = divmod(n, 100)
    return f"{_ONES[hundreds]} hundred" + (f" and {words(rest)}" if rest else "")


def _calculator(rng: random.Random) -> list[Case]:
    cases: list[Case] = []

    def add(text: str, value: float) -> None:
        cases.append(Case("calculator", (Turn(text, number=value),)))

    add("what is 12 * (3 + 4)?", 84)
    for _ in range(4):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        add(
            rng.choice(
                ["what is {a} plus {b}", "what's {a} + {b}?", "add {a} and {b}", "{a} plus {b}"]
            ).format(a=a, b=b),
            a + b,
        )
    for _ in range(4):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        add(
            rng.choice(
                ["what is {a} times {b}", "{a} multiplied by {b}", "calculate {a} * {b}", "what's {a} x {b}"]
            ).format(a=a, b=b),
            a * b,
        )
    for _ in range(3):
        b, q = rng.randint(2, 12), rng.randint(2, 30)
        add(
            rng.choice(["what is {a} divided by {b}", "{a} / {b}", "divide {a} by {b}"]).format(a=b * q, b=b),
            q,
        )
    for _ in range(3):
        a, b = rng.randint(50, 500), rng.randint(1, 49)
        add(
            rng.choice(["what is {a} minus {b}", "{a} - {b}", "subtract {b} from {a}"]).format(a=a, b=b),
            a - b,
        )
    for _ in range(5):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        template = rng.choice(["what is {a} plus {b}", "what's {a} times {b}", "how much is {a} minus {b}"])
        value = a + b if "plus" in template else a * b if "times" in template else a - b
        add(template.format(a=words(a), b=words(b)), value)
    for p, n in [(15, 80), (20, 150), (12.5, 64), (8, 250)]:
        add(
            rng.choice(["what's {p}% of {n}", "{p} percent of {n}", "calculate {p}% of {n}"]).format(
                p=p, n=n
            ),
            p * n / 100,
        )
    for p, n in [(30, 279), (25, 80), (10, 45)]:
        add(f"what is {p}% off {n}", n * (100 - p) / 100)
    for sq in [144, 81, 225]:
        add(
            rng.choice(["what is the square root of {n}", "square root of {n}", "sqrt of {n}"]).format(n=sq),
            math.isqrt(sq),
        )
    for n in [7, 12]:
        add(f"what is {n} squared", n * n)
    for k in [10, 8]:
        add(f"what is 2 to the power of {k}", 2**k)
    for n in [5, 6]:
        add(f"what is {n} factorial", math.factorial(n))
    for _ in range(3):
        a, b, c = rng.randint(2, 20), rng.randint(2, 20), rng.randint(2, 9)
        add(f"calculate ({a} + {b}) * {c}", (a + b) * c)
    add("what is 7 divided by 2", 3.5)
    add("round 3.7", 4)
    add("what's the absolute value of -42", 42)
    return cases


# (value, how it is written, to unit written, expected value)
_CONVERSIONS: list[tuple[float, str, str, float]] = [
    (5, "miles", "km", 8.04672),
    (10, "kilometers", "miles", 6.21371),
    (10, "klometers", "miles", 6.21371),
    (3, "mi", "kilometres", 4.828032),
    (100, "pounds", "kg", 45.359237),
    (70, "kg", "lbs", 154.3236),
    (2, "kilograms", "pounds", 4.409245),
    (100, "fahrenheit", "celsius", 37.77778),
    (30, "celcius", "fahrenheit", 86),
    (0, "degrees celsius", "fahrenheit", 32),
    (6, "feet", "meters", 1.8288),
    (12, "inches", "cm", 30.48),
    (100, "centimeters", "inches", 39.37008),
    (1, "gallon", "liters", 3.785412),
    (2, "litres", "gallons", 0.5283441),
    (60, "mph", "km/h", 96.56064),
    (100, "km/h", "mph", 62.13712),
    (2, "gigabytes", "megabytes", 2000),
    (5, "GB", "MB", 5000),
    (3, "hours", "minutes", 180),
    (90, "minutes", "hours", 1.5),
    (2, "days", "hours", 48),
    (500, "grams", "pounds", 1.102311),
    (16, "ounces", "grams", 453.5924),
    (1000, "square feet", "square meters", 92.90304),
    (2, "meters", "feet", 6.56168),
    (1.5, "kilometers", "meters", 1500),
    (250, "milliliters", "liters", 0.25),
    (26.2, "miles", "kilometers", 42.16481),
    (1, "mile", "feet", 5280),
]
_CONVERSION_TEMPLATES = [
    "convert {v} {f} to {t}",
    "how many {t} is {v} {f}",
    "what is {v} {f} in {t}",
    "{v} {f} to {t}",
    "how many {t} are in {v} {f}?",
]


def _units(rng: random.Random) -> list[Case]:
    cases = []
    for value, unit_from, unit_to, expected in _CONVERSIONS:
        v = int(value) if float(value).is_integer() else value
        text = rng.choice(_CONVERSION_TEMPLATES).format(v=v, f=unit_from, t=unit_to)
        cases.append(Case("unit_conversion", (Turn(text, number=expected),)))
    cases.append(Case("unit_conversion", (Turn("convert five miles to kilometers", number=8.04672),)))
    cases.append(Case("unit_conversion", (Turn("how many pounds is twenty kilograms", number=44.09245),)))
    return cases


def _date_text(day: dt.date, style: int) -> str:
    month = day.strftime("%B")
    return [
        day.isoformat(),
        f"{month} {day.day}, {day.year}",
        f"{day.day} {month} {day.year}",
        f"{day.month}/{day.day}/{day.year}",
        f"{month} {day.day} {day.year}",
    ][style % 5]


def _dates(rng: random.Random) -> list[Case]:
    cases = []
    for i in range(12):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 700))
        template = rng.choice(
            [
                "what day of the week is {d}",
                "which weekday is {d}?",
                "what day was {d}",
                "what day of the week will {d} be",
            ]
        )
        cases.append(
            Case("dates", (Turn(template.format(d=_date_text(day, i)), pattern=rf"^{day.strftime('%A')}\b"),))
        )
    for i in range(10):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 500))
        offset = rng.randint(3, 120)
        before = i % 3 == 2
        result = day - dt.timedelta(days=offset) if before else day + dt.timedelta(days=offset)
        word = "before" if before else "after"
        template = rng.choice(
            ["what is the date {n} days {w} {d}", "what date is {n} days {w} {d}?", "{n} days {w} {d}"]
        )
        expected = f"{result.day} {result.strftime('%B')} {result.year}"
        cases.append(
            Case(
                "dates",
                (Turn(template.format(n=offset, w=word, d=_date_text(day, i)), pattern=re.escape(expected)),),
            )
        )
    cases.append(Case("dates", (Turn("what's the date 10 days from today", date_from_today=10),)))
    for i in range(9):
        start = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 300))
        end = start + dt.timedelta(days=rng.randint(5, 400))
        template = rng.choice(
            [
                "how many days between {a} and {b}",
                "how many days are there from {a} to {b}?",
                "days between {a} and {b}",
            ]
        )
        cases.append(
            Case(
                "dates",
                (
                    Turn(
                        template.format(a=_date_text(start, i), b=_date_text(end, i + 1)),
                        number=(end - start).days,
                        tolerance=0,
                    ),
                ),
            )
        )
    for city, zone in [
        ("Tokyo", "Asia/Tokyo"),
        ("New York", "America/New_York"),
        ("London", "Europe/London"),
        ("Paris", "Europe/Paris"),
        ("Sydney", "Australia/Sydney"),
    ]:
        text = rng.choice(
            ["what time is it in {c}", "current time in {c}", "what's the time in {c} right now?"]
        ).format(c=city)
        cases.append(Case("time", (Turn(text, pattern=re.escape(zone)),)))
    return cases


def _timers() -> list[Case]:
    timers = [
        ("set a timer for 5 minutes", "5 minutes"),
        ("timer for 10 minutes please", "10 minutes"),
        ("start a 90 second timer", "1 minute 30 seconds"),
        ("set a timer for one hour", "1 hour"),
        ("set a timer for an hour and a half", "1 hour 30 minutes"),
        ("countdown 20 minutes", "20 minutes"),
        ("set a 3 minute timer for the eggs", "3 minutes"),
        ("wake me in 45 minutes with a timer", "45 minutes"),
    ]
    cases = [
        Case("timers", (Turn(text, pattern=rf"^Timer set for {re.escape(expected)}\b"),))
        for text, expected in timers
    ]
    reminders = [
        ("remind me to call mom tomorrow at 9am", "call mom"),
        ("remind me in 20 minutes to check the oven", "check the oven"),
        ("remind me to water the plants in 2 hours", "water the plants"),
        ("set a reminder to pay rent tomorrow at 10am", "pay rent"),
        ("remind me to buy milk in 30 minutes", "buy milk"),
        ("please remind me to stretch in one hour", "stretch"),
    ]
    cases += [
        Case("reminders", (Turn(text, pattern=rf"^Reminder set for .*{re.escape(what)}"),))
        for text, what in reminders
    ]
    return cases


def _lists() -> list[Case]:
    return [
        Case(
            "lists",
            (
                Turn("add eggs, milk and bread to my shopping list", pattern=r"eggs.*milk.*bread"),
                Turn("what's on my shopping list?", pattern=r"eggs.*milk.*bread"),
            ),
        ),
        Case(
            "lists",
            (
                Turn("put buy stamps on my todo list", pattern=r"buy stamps"),
                Turn("show my todo list", pattern=r"buy stamps"),
            ),
        ),
        Case(
            "lists",
            (
                Turn("add apples to the shopping list", pattern="apples"),
                Turn("add bananas to my shopping list", pattern="bananas"),
                Turn("remove apples from my shopping list", pattern=r"Removed apples"),
                Turn("what is on my shopping list", pattern=r"^Your shopping list: bananas$"),
            ),
        ),
        Case(
            "lists",
            (
                Turn("add call the plumber to my to-do list", pattern="call the plumber"),
                Turn("clear my todo list", pattern=r"^Cleared"),
            ),
        ),
        Case(
            "lists",
            (
                Turn("add coffee and tea to my shopping list", pattern=r"coffee.*tea"),
                Turn("clear the shopping list", pattern=r"^Cleared your shopping list \(2 items\)"),
            ),
        ),
        Case(
            "lists",
            (
                Turn("please add rice to my grocery list", pattern="rice"),
                Turn("what's on my grocery list", pattern="rice"),
            ),
        ),
        Case(
            "lists",
            (
                Turn("add tomatoes to my shopping list", pattern="tomatoes"),
                Turn("take tomatoes off my shopping list", pattern="Removed tomatoes"),
            ),
        ),
        Case(
            "lists",
            (
                Turn(
                    "add finish the report and book dentist to my todo list",
                    pattern=r"finish the report.*book dentist",
                ),
            ),
        ),
    ]


def _chance() -> list[Case]:
    return [
        Case("dice", (Turn("roll a die", pattern=r"^[1-6]$"),)),
        Case("dice", (Turn("roll a d20", pattern=r"^([1-9]|1[0-9]|20)$"),)),
        Case("dice", (Turn("roll two dice", pattern=r"^[1-6] \+ [1-6] = \d+$"),)),
        Case("dice", (Turn("roll 3d6", pattern=r"^[1-6] \+ [1-6] \+ [1-6] = \d+$"),)),
        Case("dice", (Turn("throw a dice for me", pattern=r"^[1-6]$"),)),
        Case("dice", (Turn("flip a coin", pattern=r"^(Heads|Tails)$"),)),
        Case("dice", (Turn("heads or tails?", pattern=r"^(Heads|Tails)$"),)),
        Case("dice", (Turn("toss a coin please", pattern=r"^(Heads|Tails)$"),)),
    ]


def _spelling() -> list[Case]:
    words_ = [
        "necessary",
        "rhythm",
        "beautiful",
        "accommodate",
        "separate",
        "Wednesday",
        "queue",
        "definitely",
    ]
    templates = ["how do you spell {w}", "spell {w}", "can you spell {w} for me?", "spell the word {w}"]
    return [
        Case(
            "spelling", (Turn(templates[i % 4].format(w=w), pattern=rf"^{re.escape('-'.join(w.upper()))}$"),)
        )
        for i, w in enumerate(words_)
    ]


def _compound() -> list[Case]:
    return [
        Case(
            "compound",
            (
                Turn(
                    "convert 5 miles to km and add eggs to my shopping list",
                    pattern=r"8\.047 kilometers(.|\n)*eggs",
                ),
            ),
        ),
        Case("compound", (Turn("what is 15% of 80 and flip a coin", pattern=r"12(.|\n)*(Heads|Tails)"),)),
        Case("compound", (Turn("spell cat and what is 6 times 7", pattern=r"C-A-T(.|\n)*42"),)),
        Case(
            "compound",
            (
                Turn(
                    "add milk to my shopping list and set a timer for 5 minutes",
                    pattern=r"milk(.|\n)*Timer set for 5 minutes",
                ),
            ),
        ),
        Case(
            "compound",
            (
                Turn(
                    "what day of the week is 2026-12-25 and convert 10 kg to pounds",
                    pattern=r"Friday(.|\n)*22\.05 pounds",
                ),
            ),
        ),
        Case("compound", (Turn("what is 100 divided by 4, and then spell dog", pattern=r"25(.|\n)*D-O-G"),)),
        Case(
            "compound", (Turn("roll a die and convert 3 feet to inches", pattern=r"[1-6](.|\n)*36 inches"),)
        ),
        Case(
            "compound",
            (
                Turn(
                    "set a timer for 10 minutes and add bread to my shopping list",
                    pattern=r"Timer set for 10 minutes(.|\n)*bread",
                ),
            ),
        ),
    ]


def _follow_ups() -> list[Case]:
    return [
        Case("follow_up", (Turn("convert 10 miles", question=True, answer="km", number=16.09344),)),
        Case(
            "follow_up",
            (Turn("set a timer", question=True, answer="10 minutes", pattern=r"Timer set for 10 minutes"),),
        ),
        Case(
            "follow_up",
            (Turn("how do you spell", question=True, answer="giraffe", pattern=r"G-I-R-A-F-F-E"),),
        ),
        Case(
            "follow_up",
            (Turn("convert 12 pounds", question=True, answer="kilograms", number=5.443108),),
        ),
        Case(
            "follow_up", (Turn("add to my shopping list", question=True, answer="pears", pattern=r"pears"),)
        ),
        Case("follow_up", (Turn("convert 20 kg", question=True, answer="pounds", number=44.09245),)),
        Case("follow_up", (Turn("calculate", question=True, answer="9 times 9", number=81),)),
        Case(
            "follow_up",
            (
                Turn(
                    "remind me to call the bank",
                    question=True,
                    answer="in 2 hours",
                    pattern=r"Reminder set for .*call the bank",
                ),
            ),
        ),
    ]


def _memory() -> list[Case]:
    facts = [
        ("remember that my sister's name is Ana", "what's my sister's name?", "Ana"),
        ("remember my favorite color is green", "what is my favorite color?", "green"),
        ("please remember that my dog is called Rex", "what is my dog called?", "Rex"),
        ("remember that my wifi password is tulip42", "what's my wifi password?", "tulip42"),
        ("don't forget that my anniversary is on June 12", "when is my anniversary?", "June 12"),
        ("remember that I parked on level 3", "where did I park?", "level 3"),
        ("keep in mind that my doctor is Dr. Patel", "who is my doctor?", "Patel"),
        ("remember that my brother lives in Lisbon", "where does my brother live?", "Lisbon"),
        ("remember that my gym locker code is 5521", "what's my gym locker code?", "5521"),
        ("remember my daughter's birthday is March 3", "when is my daughter's birthday?", "March 3"),
    ]
    cases = []
    for i, (tell, ask, expected) in enumerate(facts):
        session = "later" if i % 2 == 0 else "main"
        cases.append(
            Case("memory", (Turn(ask, pattern=re.escape(expected), session=session),), setup=(Turn(tell),))
        )
    return cases


def _out_of_scope() -> list[Case]:
    questions = [
        "who won the world cup in 2018",
        "what's the capital of france",
        "explain quantum entanglement to me",
        "what is the meaning of life",
        "how do I bake sourdough bread",
        "who wrote war and peace",
        "what's the best programming language",
        "can you recommend a good movie",
        "how tall is mount everest",
        "translate hello into japanese",
        "what's the stock price of apple",
        "write me a poem about the sea",
        "how do vaccines work",
        "what's the population of brazil",
        "who is the president of the united states",
        "how do I fix a flat tire",
    ]
    return [Case("out_of_scope", (Turn(q, pattern=OUT_OF_SCOPE),)) for q in questions]


def _not_installed() -> list[Case]:
    requests = [
        ("what's the weather in Paris tomorrow", "weather"),
        ("will it rain today?", "weather"),
        ("play some jazz", "music"),
        ("play my workout playlist", "music"),
        ("book a flight to Rome next friday", "flights"),
        ("find me a flight from Boston to Denver", "flights"),
        ("send an email to Bob saying I'm late", "email"),
        ("email my boss that I'm sick today", "email"),
    ]
    return [
        Case("not_installed", (Turn(text, pattern=rf"no tool for .*{what}.* is installed"),))
        for text, what in requests
    ]


def _greetings() -> list[Case]:
    return [
        Case("greeting", (Turn(text, pattern=r"^Hello"),))
        for text in ("hi", "hello there", "good morning", "hey!")
    ]


def build(seed: int = 7) -> list[Case]:
    rng = random.Random(seed)
    return [
        *_calculator(rng),
        *_units(rng),
        *_dates(rng),
        *_timers(),
        *_lists(),
        *_chance(),
        *_spelling(),
        *_compound(),
        *_follow_ups(),
        *_memory(),
        *_out_of_scope(),
        *_not_installed(),
        *_greetings(),
    ]
