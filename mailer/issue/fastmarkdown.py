"""Python-Markdown's own passes, minus the calls that cannot match.

Inline: the inline pass is most of a conversion (9 of ~14 ms per issue): for
every text node it calls each of the 15 inline patterns in turn, ~5,000 calls
per issue, and nearly all of them find nothing. Every pattern of this pipeline
needs a literal in the text to match at all (a link needs "[", an entity "&", a
line break two spaces and a newline), so a pattern whose literal is not in the
text is skipped, with the answer the pattern would have given ("no match"); so
are the reference-link patterns in a document that defines no reference (they
parse each bracket pair in Python, then give up).

Blocks: for every block the block parser asks each processor whether it takes
it; six of those tests search the whole block with a regular expression that
needs a literal (a header "#", a quote ">", a table "|", ...). The test is
answered "no" without the search when the block lacks it (a TWIR list of 40
links is one block, searched six times).

A pattern or processor this module does not know (another extension's, or a
known name registered with another class) is always called. The output is
Python-Markdown's own: tests compare it with the stock pipeline over the corpus
and generated Markdown. The inline override replaces the name-mangled loop of
``InlineProcessor`` (the same ten lines plus the skip); were a new
Python-Markdown to rename it, it would simply not be called (stock speed, same
output).
"""

from __future__ import annotations

from markdown import treeprocessors, util

# Registered name of each inline pattern -> (its class, literals one of which any match
# contains), from the pattern's regular expression (backtick "(?<!\\)`", link "(?<!\!)\[").
# A name registered with another class counts as unknown.
TRIGGERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "backtick": ("BacktickInlineProcessor", ("`",)), "escape": ("EscapeInlineProcessor", ("\\",)),
    "footnote": ("FootnoteInlineProcessor", ("[^",)),
    "reference": ("ReferenceInlineProcessor", ("[",)), "link": ("LinkInlineProcessor", ("[",)),
    "short_reference": ("ShortReferenceInlineProcessor", ("[",)),
    "image_link": ("ImageInlineProcessor", ("![",)), "image_reference": ("ImageReferenceInlineProcessor", ("![",)),
    "short_image_ref": ("ShortImageReferenceInlineProcessor", ("![",)),
    "autolink": ("AutolinkInlineProcessor", ("<",)), "automail": ("AutomailInlineProcessor", ("<",)),
    "html": ("HtmlInlineProcessor", ("<",)), "linebreak": ("SubstituteTagInlineProcessor", ("  \n",)),
    "entity": ("HtmlInlineProcessor", ("&",)), "em_strong": ("DelimiterProcessor", ("*", "_")),
}
# Patterns that only ever link to a reference definition (``[text][id]``, ``[id]``): in a
# document without any, each finds its brackets and gives up without changing the text.
REFERENCE_ONLY = frozenset({"reference", "short_reference", "image_reference", "short_image_ref"})


class FastInlineProcessor(treeprocessors.InlineProcessor):
    def __init__(self, md):
        super().__init__(md)
        # The same patterns as a list, in the same order: Registry.__getitem__ re-checks
        # its sort order on every access (7% of a conversion on its own).
        self.inlinePatterns = list(md.inlinePatterns)
        known = _known(md.inlinePatterns, TRIGGERS)
        names = [{id(md.inlinePatterns[n]): n for n in known}.get(id(p)) for p in self.inlinePatterns]
        # Per pattern, the literals one of which a match needs (None: always call it), and
        # whether it needs a reference definition in the document.
        self._triggers = [frozenset(known[name]) if name else None for name in names]
        self._reference_only = [name in REFERENCE_ONLY for name in names]
        self._literals = frozenset().union(*(t for t in self._triggers if t is not None))

    def _InlineProcessor__handleInline(self, data: str, patternIndex: int = 0) -> str:
        # Python-Markdown's loop (InlineProcessor.__handleInline, 3.x), plus the skip.
        if isinstance(data, util.AtomicString):
            return data
        # A match replaces text by a placeholder ("\x02klzzwxh:0001\x03"), which holds no
        # literal: one absent now stays absent while the loop runs.
        absent = {lit for lit in self._literals if lit not in data}
        no_refs = not self.md.references
        startIndex = 0
        count = len(self.inlinePatterns)
        while patternIndex < count:
            triggers = self._triggers[patternIndex]
            if (triggers is not None and triggers <= absent) or (no_refs and self._reference_only[patternIndex]):
                patternIndex, startIndex = patternIndex + 1, 0  # as after "no match"
                continue
            data, matched, startIndex = self._InlineProcessor__applyPattern(
                self.inlinePatterns[patternIndex], data, patternIndex, startIndex)
            if not matched:
                patternIndex += 1
        return data


# Registered name of each block processor -> (its class, literals one of which a block
# must hold for its test to say yes), from the test's regular expression: "(?:^|\n)#{1,6}...",
# "(^|\n)[ ]{0,3}>", a header row split on "|", three of "-", "_" or "*", "^.*?\n(?:=+|-+)",
# "(^|\n)[ ]{0,3}:[ ]{1,3}".
BLOCK_TRIGGERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hashheader": ("HashHeaderProcessor", ("#",)), "quote": ("BlockQuoteProcessor", (">",)),
    "table": ("TableProcessor", ("|",)), "hr": ("HRProcessor", ("-", "_", "*")),
    "setextheader": ("SetextHeaderProcessor", ("\n=", "\n-")), "deflist": ("DefListProcessor", (":",)),
}


def _guarded(test, literals: tuple[str, ...]):
    """``test``, answered False at once for a block holding none of ``literals``."""
    if len(literals) == 1:
        literal = literals[0]
        return lambda parent, block: literal in block and test(parent, block)
    return lambda parent, block: any(lit in block for lit in literals) and test(parent, block)


def _guard_block_tests(parser) -> None:
    for name, literals in _known(parser.blockprocessors, BLOCK_TRIGGERS).items():
        processor = parser.blockprocessors[name]
        if "test" not in vars(processor):
            processor.test = _guarded(processor.test, literals)  # on this instance only


def _known(registry, table: dict[str, tuple[str, tuple[str, ...]]]) -> dict[str, tuple[str, ...]]:
    """Name -> literals of the registry's items that ``table`` knows, registered with their
    stock class; anything else is "unknown" (always called)."""
    found = {}
    for name in _names(registry):
        cls, literals = table.get(name, ("", ()))
        if type(registry[name]).__name__ == cls:
            found[name] = literals
    return found


def _names(registry) -> list[str]:
    # Registry lists its names only privately; without them every pattern is "unknown"
    # (always called), which is the stock behaviour.
    return [item.name for item in getattr(registry, "_priority", ())]


def install(md) -> None:
    """Put the fast inline pass in place of the stock one (same name, same priority), and
    guard the block tests this module knows."""
    _guard_block_tests(md.parser)
    priority = {item.name: item.priority for item in getattr(md.treeprocessors, "_priority", ())}.get("inline")
    # Only over Python-Markdown's own inline pass: an extension's replacement stays.
    if priority is not None and type(md.treeprocessors["inline"]) is treeprocessors.InlineProcessor:
        md.treeprocessors.register(FastInlineProcessor(md), "inline", priority)
