"""The words of the questions: wordings, options and the open-answer grammar per category.

Every category has at least three wordings that mean exactly the same thing; a question's
wording is drawn from its own seed, never from its label, so the words carry no answer.
Option texts never contain one another (tools match answers by text: "eleven o'clock"
holds no other hour, where "11 o'clock" held "1 o'clock").

Label classes (CLASSES, per category): what balancing counts and what the open answer
names. For size and closer questions the classes are "first" / "second" (the object named
first or second in the question) and "same"; the stored label is then that object's id or
"~=". On-screen size asks only pairs that differ (a person cannot tell sizes within a few
percent on screen), so it has no "same".

Open answers (OPEN_WORDS): a reply, stripped of surrounding white space and of one final
".", and lower-cased, must equal one of the question's `answer_choices` exactly (read_open,
the evaluation's reader too).
"""

SAME = "~="
HOUR_WORDS = ("twelve", "one", "two", "three", "four", "five", "six", "seven", "eight",
              "nine", "ten", "eleven")
HOURS = tuple(str(h) for h in range(1, 13))
LEFT_RIGHT = ("left_of", "right_of")
FRONT_BEHIND = ("in_front_of", "behind")
CLASSES = {
    "world_qrr": ("<", SAME, ">"),
    "view_qrr": ("<", SAME, ">"),
    "world_trr": HOURS,
    "view_trr": HOURS,
    "world_topology": ("disjoint", "touching"),
    "world_size": ("first", "second", "same"),
    "world_closer": ("first", "second", "same"),
    "view_axial": LEFT_RIGHT + FRONT_BEHIND,
    "view_occlusion": ("yes", "no"),
    "view_size": ("first", "second"),
}
OPEN_WORDS = {
    "<": "shorter", SAME: "same", ">": "longer", "disjoint": "apart", "touching": "touching",
    "first": "first", "second": "second", "same": "same", "left_of": "left",
    "right_of": "right", "in_front_of": "front", "behind": "behind", "yes": "yes", "no": "no",
    **{h: h for h in HOURS},
}
MULTI_VIEW_INTRO = "The four images show the same scene from four sides. "
MULTI_VIEW_NAME = "{} in image 1"  # a name that uses a relation, judged in view 0

WORDINGS = {
    "world_qrr": (
        "In the 3D scene, is the distance between {0} and {1} shorter than, about the same "
        "as, or longer than the distance between {2} and {3}?",
        "Compare two distances in the 3D scene: from {0} to {1}, and from {2} to {3}. Is the "
        "first one shorter, about the same, or longer?",
        "In the real 3D layout, how does the distance from {0} to {1} compare with the "
        "distance from {2} to {3}?",
    ),
    "view_qrr": (
        "In this image, is the on-screen distance between {0} and {1} shorter than, about the "
        "same as, or longer than the on-screen distance between {2} and {3}?",
        "Compare two distances measured on this picture: from {0} to {1}, and from {2} to "
        "{3}. Is the first one shorter, about the same, or longer?",
        "On the image itself (in pixels), how does the distance from {0} to {1} compare with "
        "the distance from {2} to {3}?",
    ),
    "world_trr": (
        "Imagine standing at {1} and facing {2}, which is at 12 o'clock. Seen from above, at "
        "what clock position is {0}?",
        "Seen from above the scene, with {1} at the centre of a clock face and {2} at 12 "
        "o'clock, at which hour is {0}?",
        "Looking down on the scene: if the direction from {1} to {2} points to 12 o'clock, "
        "to which hour does the direction from {1} to {0} point?",
    ),
    "view_trr": (
        "In this image, take the direction from {1} to {2} as 12 o'clock. At what clock "
        "position around {1} is {0}?",
        "Picture a clock face drawn on this image, centred on {1}, with 12 o'clock pointing "
        "towards {2}. At which hour is {0}?",
        "In this image, if the line from {1} to {2} points to 12 o'clock, to which hour does "
        "the line from {1} to {0} point?",
    ),
    # touching is judged on the footprints, the outlines seen from straight above
    "world_topology": (
        "Seen from straight above, are the outlines of {0} and {1} touching, or apart?",
        "Looking straight down on the scene, do {0} and {1} touch each other, or is there a "
        "gap between them?",
        "Viewed from directly above, is {0} in contact with {1}, or do they stand apart?",
    ),
    "world_size": (
        "Which is bigger in the 3D scene: {0} or {1}?",
        "In real size (not as it appears in the picture), which object is larger: {0} or {1}?",
        "Considering the objects' actual sizes, is {0} or {1} the bigger one?",
    ),
    "world_closer": (
        "In the 3D scene, which is closer to {0}: {1} or {2}?",
        "Which of {1} and {2} is nearer to {0} in the real 3D layout?",
        "Measured in the 3D scene, is {1} or {2} at the smaller distance from {0}?",
    ),
    "view_axial_lr": (
        "In this image, is {0} to the left of or to the right of {1}?",
        "Looking at the picture, is {0} on the left or on the right of {1}?",
        "In this image, on which side of {1} is {0}: left or right?",
    ),
    "view_axial_fb": (
        "In this image, is {0} in front of or behind {1}?",
        "Looking at the picture, is {0} nearer to the camera than {1} (in front) or farther "
        "(behind)?",
        "In this image, which is true: {0} is in front of {1}, or {0} is behind {1}?",
    ),
    "view_occlusion": (
        "In this image, does {0} hide part of {1}?",
        "In the picture, is part of {1} hidden behind {0}?",
        "In this image, does {0} block the view of some of {1}?",
    ),
    "view_size": (
        "In this image, which covers more of the picture: {0} or {1}?",
        "Which looks bigger in this image (takes up more pixels): {0} or {1}?",
        "On screen, which object appears larger: {0} or {1}?",
    ),
}


def percent(tau: float) -> str:
    return f"{tau * 100:g}%"


def hour_text(hour: int) -> str:
    return f"{HOUR_WORDS[hour % 12]} o'clock"


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


def template_key(category: str, klass: str) -> str:
    """The WORDINGS entry of a question: axial questions ask one axis, named by the class."""
    if category == "view_axial":
        return "view_axial_lr" if klass in LEFT_RIGHT else "view_axial_fb"
    return category


def question_text(category: str, klass: str, wording: int, names: list[str]) -> str:
    return WORDINGS[template_key(category, klass)][wording].format(*names)


def options(category: str, klass: str, names: list[str], tau: float,
            hours: tuple[int, ...] = ()) -> list[tuple[str, str]]:
    """[(option text, class)] in a fixed order (the caller shuffles them); `hours` are the
    offered hours of a clock question."""
    within = percent(tau)
    constraint = category.split("_", 1)[1]
    if constraint == "qrr":
        return [("Shorter", "<"), (f"About the same (within {within})", SAME), ("Longer", ">")]
    if constraint == "trr":
        return [(hour_text(h), str(h)) for h in hours]
    if constraint == "topology":
        return [("Apart", "disjoint"), ("Touching", "touching")]
    if constraint == "axial":
        if klass in LEFT_RIGHT:
            return [("To the left", "left_of"), ("To the right", "right_of")]
        return [("In front", "in_front_of"), ("Behind", "behind")]
    if constraint == "occlusion":
        return [("Yes", "yes"), ("No", "no")]
    first, second = (names[1], names[2]) if constraint == "closer" else (names[0], names[1])
    same = {"world_size": [("They are the same size", "same")],
            "world_closer": [(f"About equally close (within {within})", "same")]}
    return [(cap(first), "first"), (cap(second), "second"), *same.get(category, [])]


def open_choices(category: str, klass: str) -> tuple[str, ...]:
    """The answers a reply to the open form of a question may be."""
    if category == "view_axial":
        classes = LEFT_RIGHT if klass in LEFT_RIGHT else FRONT_BEHIND
    else:
        classes = CLASSES[category]
    return tuple(OPEN_WORDS[c] for c in classes)


def read_open(reply: str, choices) -> str | None:
    """The allowed answer a reply to an open question gives, None when it gives none: the
    grammar every open prompt states (FORMAT 10.5)."""
    text = reply.strip()
    text = (text[:-1] if text.endswith(".") else text).lower()
    return text if text in choices else None


def open_grammar(category: str, klass: str, names: list[str], tau: float) -> str:
    """The sentence after an open question that says exactly what to answer."""
    within = percent(tau)
    constraint = category.split("_", 1)[1]
    if constraint == "qrr":
        return (f'Answer with one word: shorter, same or longer ("same" means the two '
                f"distances differ by at most {within}).")
    if constraint == "trr":
        return "Answer with the hour only, as a number from 1 to 12."
    if category == "view_size":
        return f'Answer with one word: "first" for {names[0]} or "second" for {names[1]}.'
    if constraint in ("size", "closer"):
        first, second = (names[1], names[2]) if constraint == "closer" else names[:2]
        same = {"world_size": "they are the same size",
                "world_closer": f"they are equally close (within {within})"}[category]
        return (f'Answer with one word: "first" for {first}, "second" for {second}, or '
                f'"same" if {same}.')
    words = open_choices(category, klass)
    return f"Answer with one word: {words[0]} or {words[1]}."
