"""Every sentence the agent says in its own words, in one place.

A tool phrases its own results (its ``display``, or the reply template of the intent it serves) and
asks for its own missing arguments (the questions of its declaration). What is left is said by the
planner (out of scope, a greeting, a recognised request without a tool, memory) or by the built-in
Generate backend when it has no plan to read; both take their words from here.
"""

from __future__ import annotations

from typing import Final

CAPABILITIES: Final = (
    "I can do arithmetic, convert units, tell the time in a city, work with dates, set timers and "
    "reminders, keep lists, roll dice, flip a coin, spell words and remember things for you."
)
# The answer to a request outside every intent: the planner's, and Generate's when it answers an
# out-of-scope understanding without the planner's reply.
OUT_OF_SCOPE: Final = f"Sorry, that's outside what I can help with. {CAPABILITIES}"
GREETING: Final = "Hello! How can I help you?"
HOW_CAN_I_HELP: Final = f"How can I help? {CAPABILITIES}"
NO_RESULT: Final = "Sorry, I couldn't work that out."

# Intents people ask for that the agent recognises but no tool of the catalogue serves yet.
WITHOUT_TOOL: Final = {
    "weather": "weather forecasts",
    "play_music": "playing music",
    "book_flight": "booking flights",
    "send_email": "sending email",
}

REMEMBERED: Final = "OK, I'll remember that."
RECALL_NOTHING: Final = "I don't know yet. Tell me and I'll remember it."


def without_tool(intent: str) -> str:
    """A recognised request that no tool serves: known ones by what they ask for."""
    what = WITHOUT_TOOL.get(intent)
    if what is not None:
        return f"I understood that, but no tool for {what} is installed."
    return f"I understood that as '{intent}', but no tool for it is installed."


def remembered(fact: str) -> str:
    return f"OK, I'll remember that {fact}."


def generic_question(argument: str) -> str:
    """The question for a missing argument whose tool declares none."""
    return f"What is the {argument.replace('_', ' ')}?"


def step_failed(message: str) -> str:
    return f"Sorry, I couldn't do that: {message}"
