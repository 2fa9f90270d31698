"""A compiled checker for the JSON Schema keywords the scene record's schema uses.

Why not the jsonschema package: the validator checks every scene's metadata (thousands of
constraint records each), where jsonschema takes seconds per scene, and it must also run in
Blender's own Python, which has no extra packages. The schema is compiled once into nested
closures; a keyword outside SUPPORTED is refused at compile time, so a schema change that
needs more fails loudly in the tests instead of being skipped. Semantics follow draft 2020-12
for these keywords (bool is not a number; 1.0 is an integer; `items` after `prefixItems`).
"""

import re

SUPPORTED = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "prefixItems", "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "pattern", "allOf", "oneOf", "$ref",
}
ANNOTATIONS = {"$schema", "$id", "$defs", "$comment", "title", "description"}


class SchemaError(ValueError):
    """The first place an instance breaks the schema: `path` (list of keys) and `message`."""

    def __init__(self, message: str, path=()):
        super().__init__(message)
        self.message, self.path = message, list(path)

    def __str__(self) -> str:
        return f"{'/'.join(map(str, self.path)) or '<root>'}: {self.message}"


def _is_type(value, name: str) -> bool:
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    kinds = {"string": str, "boolean": bool, "array": list, "object": dict}
    if name == "null":
        return value is None
    return isinstance(value, kinds[name])


def _same(a, b) -> bool:
    """JSON equality: true and 1 differ, 1 and 1.0 do not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _inside(key, check):
    """Run `check` on a child, adding its key to the path of an error (free when none)."""
    def run(value):
        try:
            check(value)
        except SchemaError as exc:
            exc.path.insert(0, key)
            raise
    return run


class _Compiler:
    def __init__(self, root: dict):
        self.root = root
        self.refs: dict[str, object] = {}

    def ref(self, target: str):
        if not target.startswith("#/"):
            raise ValueError(f"$ref {target!r}: only local references '#/...' are supported")
        if target not in self.refs:
            self.refs[target] = None  # still compiling: a recursive reference
            node = self.root
            for part in target[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            self.refs[target] = self.compile(node)
        if self.refs[target] is None:
            return lambda value: self.refs[target](value)
        return self.refs[target]

    def compile(self, schema):
        if schema is True:
            return lambda value: None
        if schema is False:
            def never(value):
                raise SchemaError("no value is allowed here")
            return never
        unknown = set(schema) - SUPPORTED - ANNOTATIONS
        if unknown:
            raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported: allowed are "
                             f"{sorted(SUPPORTED)}")
        checks = [self._keyword(key, schema[key], schema) for key in schema if key in SUPPORTED]
        if len(checks) == 1:
            return checks[0]

        def check(value):
            for c in checks:
                c(value)
        return check

    def _keyword(self, key, arg, schema):
        method = getattr(self, "_" + key.lstrip("$"))
        return method(arg, schema)

    def _type(self, arg, schema):
        names = [arg] if isinstance(arg, str) else list(arg)
        if names in (["object"], ["array"], ["string"], ["boolean"]):
            kind = {"object": dict, "array": list, "string": str, "boolean": bool}[names[0]]

            def check_one(value):
                if not isinstance(value, kind):
                    raise SchemaError(f"{value!r} is not of type {names[0]}")
            return check_one

        def check(value):
            if not any(_is_type(value, n) for n in names):
                raise SchemaError(f"{value!r} is not of type {' or '.join(names)}")
        return check

    def _enum(self, arg, schema):
        if all(isinstance(option, str) for option in arg):
            options = frozenset(arg)

            def check_strings(value):
                if not (isinstance(value, str) and value in options):
                    raise SchemaError(f"{value!r} is not one of {arg}")
            return check_strings

        def check(value):
            if not any(_same(value, option) for option in arg):
                raise SchemaError(f"{value!r} is not one of {arg}")
        return check

    def _const(self, arg, schema):
        def check(value):
            if not _same(value, arg):
                raise SchemaError(f"{value!r} is not {arg!r}")
        return check

    def _properties(self, arg, schema):
        children = [(name, self.compile(sub)) for name, sub in arg.items()]

        def check(value):
            if isinstance(value, dict):
                for name, child in children:
                    if name in value:
                        try:
                            child(value[name])
                        except SchemaError as exc:
                            exc.path.insert(0, name)
                            raise
        return check

    def _required(self, arg, schema):
        def check(value):
            if isinstance(value, dict):
                for name in arg:
                    if name not in value:
                        raise SchemaError(f"{name!r} is a required property")
        return check

    def _additionalProperties(self, arg, schema):
        known = set(schema.get("properties", {}))
        extra = self.compile(arg)

        def check(value):
            if isinstance(value, dict):
                for name in value.keys() - known:
                    if arg is False:
                        raise SchemaError(f"additional property {name!r} is not allowed")
                    _inside(name, extra)(value[name])
        return check

    def _items(self, arg, schema):
        start = len(schema.get("prefixItems", ()))
        item = self.compile(arg)

        def check(value):
            if isinstance(value, list):
                for i in range(start, len(value)):
                    try:
                        item(value[i])
                    except SchemaError as exc:
                        exc.path.insert(0, i)
                        raise
        return check

    def _prefixItems(self, arg, schema):
        items = [_inside(i, self.compile(sub)) for i, sub in enumerate(arg)]

        def check(value):
            if isinstance(value, list):
                for child, element in zip(items, value, strict=False):
                    child(element)
        return check

    def _bound(self, arg, message, holds):
        def check(value):
            if _number(value) and not holds(value):
                raise SchemaError(f"{value!r} {message} {arg!r}")
        return check

    def _minimum(self, arg, schema):
        return self._bound(arg, "is less than the minimum of", lambda v: v >= arg)

    def _maximum(self, arg, schema):
        return self._bound(arg, "is more than the maximum of", lambda v: v <= arg)

    def _exclusiveMinimum(self, arg, schema):
        return self._bound(arg, "is not more than", lambda v: v > arg)

    def _exclusiveMaximum(self, arg, schema):
        return self._bound(arg, "is not less than", lambda v: v < arg)

    def _minItems(self, arg, schema):
        def check(value):
            if isinstance(value, list) and len(value) < arg:
                raise SchemaError(f"{len(value)} items, fewer than {arg}")
        return check

    def _maxItems(self, arg, schema):
        def check(value):
            if isinstance(value, list) and len(value) > arg:
                raise SchemaError(f"{len(value)} items, more than {arg}")
        return check

    def _minLength(self, arg, schema):
        def check(value):
            if isinstance(value, str) and len(value) < arg:
                raise SchemaError(f"{value!r} is shorter than {arg}")
        return check

    def _pattern(self, arg, schema):
        regex = re.compile(arg)

        def check(value):
            if isinstance(value, str) and not regex.search(value):
                raise SchemaError(f"{value!r} does not match {arg!r}")
        return check

    def _allOf(self, arg, schema):
        subs = [self.compile(sub) for sub in arg]

        def check(value):
            for sub in subs:
                sub(value)
        return check

    def _oneOf(self, arg, schema):
        subs = [self.compile(sub) for sub in arg]

        def check(value):
            passed = 0
            for sub in subs:
                try:
                    sub(value)
                    passed += 1
                except SchemaError:
                    pass
            if passed != 1:
                raise SchemaError(f"{value!r} matches {passed} of the oneOf schemas, not 1")
        return check

    def _ref(self, arg, schema):
        return self.ref(arg)


def compile_schema(schema: dict):
    """A function that returns None for a valid instance and raises SchemaError otherwise."""
    if not isinstance(schema, dict):
        raise ValueError(f"schema must be a JSON object, got {type(schema).__name__}")
    return _Compiler(schema).compile(schema)
