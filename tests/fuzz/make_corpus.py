#!/usr/bin/env python3
"""Writes the seed corpus under tests/fuzz/corpus/ in the byte format of fuzz_input.hpp.

A value is [kind][length: 2 bytes][bytes], kind even: JSON text, odd: CBOR. A name is one byte
(< 200: one of "a", "b", "c") or [>= 200][length][bytes]. Run it again after changing the format.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def value(data, cbor=False):
    data = data.encode() if isinstance(data, str) else data
    return bytes([1 if cbor else 0]) + struct.pack(">H", len(data)) + data


def pick(i):
    return bytes([i])


def raw(name):
    name = name.encode() if isinstance(name, str) else name
    return bytes([255, len(name)]) + name


def text(s):
    s = s.encode() if isinstance(s, str) else s
    return bytes([len(s)]) + s


CBOR_NAN_DOC = bytes([0xA1, 0x61, 0x78, 0xF9, 0x7E, 0x00])            # {"x": NaN}
CBOR_INF_DOC = bytes([0xA1, 0x61, 0x78, 0xF9, 0x7C, 0x00])            # {"x": Infinity}
CBOR_BAD_UTF8 = bytes([0xA1, 0x62, 0xFF, 0xFE, 0x62, 0xC3, 0x28])     # {"\xff\xfe": "\xc3("}
CBOR_BINARY = bytes([0xA1, 0x61, 0x62, 0x43, 1, 2, 3])                # {"b": binary}
CBOR_DEEP = bytes([0xA1, 0x61, 0x64]) + bytes([0x81] * 600) + bytes([0x01])  # {"d": [[[...1]]]}

WRITE = {
    "insert_update_remove": pick(0) + pick(0) + pick(0) + value('{"a":1,"n":{"b":[1,2]}}')
    + pick(1) + pick(0) + pick(1) + value('{"x":"y"}')
    + pick(3) + pick(0) + pick(1) + value('{"x":null,"z":{"w":1}}')
    + pick(4) + pick(0) + pick(1) + value('{"x":"y"}')
    + pick(4) + pick(0) + pick(1) + value('{"x":"y"}')
    + pick(5) + pick(0) + pick(1)
    + pick(5) + pick(0) + pick(1),
    "non_objects": b"".join(pick(op) + pick(0) + pick(1) + value(v)
                            for op in (0, 1, 3, 4) for v in ("[1,2]", "\"s\"", "42", "null", "true", "{")),
    "empty_and_raw_names": pick(1) + raw("") + pick(0) + value("{}")
    + pick(1) + pick(0) + raw("") + value("{}")
    + pick(1) + raw(b"\xff\x00name") + raw(b"id\x00\xfe") + value('{"k":1}')
    + pick(6) + raw(b"\xff\x00name") + raw(b"id\x00\xfe")
    + pick(5) + raw("") + raw(""),
    "cbor_nan_inf": pick(0) + pick(0) + pick(0) + value(CBOR_NAN_DOC, True)
    + pick(1) + pick(0) + pick(0) + value(CBOR_INF_DOC, True)
    + pick(1) + pick(0) + pick(2) + value(CBOR_BAD_UTF8, True)
    + pick(1) + pick(0) + pick(3) + value(CBOR_BINARY, True),
    "deep": pick(1) + pick(0) + pick(0) + value("{\"d\":" + "[" * 300 + "]" * 300 + "}")
    + pick(1) + pick(0) + pick(1) + value("{\"d\":" + "[" * 254 + "]" * 254 + "}")
    + pick(3) + pick(0) + pick(1) + value("{\"d\":" + "{\"e\":" * 300 + "1" + "}" * 300 + "}")
    + pick(0) + pick(0) + pick(0) + value(CBOR_DEEP, True),
    "insert_into": pick(2) + pick(0) + pick(0) + value('{"k":[1,{"z":null}]}') + pick(2) + pick(1) + pick(0) + value("{}"),
    "duplicate_id": pick(1) + pick(0) + pick(0) + value("{}") + pick(1) + pick(0) + pick(0) + value('{"a":1}'),
    "update_unchanged": pick(1) + pick(0) + pick(0) + value('{"a":1}') + pick(3) + pick(0) + pick(0) + value('{"a":1.0}')
    + pick(3) + pick(0) + pick(0) + value('{"b":null}') + pick(4) + pick(0) + pick(0) + value('{"a":1}'),
}

DOC = value('{"a":{"b":1},"a.b":2,"":{"":3},"~":4,"/":5,"t":[10,11],"0":6}')


def filt(flags, conditions, doc=DOC):
    out = bytes([flags, len(conditions)])
    for field, v in conditions:
        out += text(field) + v
    return out + doc


FILTER = {
    "dotted": filt(3, [("a.b", value("1"))]),
    "pointer_array": filt(0, [("/t/1", value("11"))]),
    "pointer_escapes": filt(3, [("/~0", value("4")), ("/~1", value("5"))]),
    "malformed_pointers": filt(3, [("/~", value("1")), ("/~2", value("1")), ("/a~", value("1"))]),
    "odd_indices": filt(3, [("/t/01", value("11")), ("/t/-", value("11")), ("/t/99999999999999999999999", value("1"))]),
    "empty_field": filt(3, [("", value("null")), ("/", value('{"":3}'))]),
    "delete_only": filt(2, [("a.b", value("1"))]),
    "nan_value": filt(3, [("x", value(bytes([0xF9, 0x7E, 0x00]), True))], value(CBOR_NAN_DOC, True)),
    "deep_value": filt(3, [("d", value("[" * 400 + "]" * 400))], value("{\"d\":" + "[" * 400 + "]" * 400 + "}")),
    "not_object_doc": filt(3, [("v", value("[1]"))], value("[1]")),
    "bad_utf8": filt(3, [(b"\xff\xfe", value('"\\u00e9"'))], value(CBOR_BAD_UTF8, True)),
    "numbers": filt(3, [("n", value("21.0"))], value('{"n":21}')),
}


def spec(mode, text, *docs):
    """A query_fuzzer input: [mode: 0 query, 1 filter][spec][documents...]."""
    out = bytes([mode]) + (value(text, True) if isinstance(text, bytes) else value(text))
    return out + b"".join(value(d) for d in docs)


USER = '{"name":"Ada","age":21,"tier":"gold","trial":false,"tags":["math","poet"],"a.b":1,"n":{"x":1.5}}'
BIG = '{"u":18446744073709551615,"i":-1,"m":-9223372036854775808,"f":9007199254740992.0,"p":9007199254740993}'
# {"a": {"$eq": NaN}} and {"a": {"$in": [Infinity]}} in CBOR (JSON text has neither).
CBOR_NAN_OPERAND = bytes([0xA1, 0x61, 0x61, 0xA1, 0x63]) + b"$eq" + bytes([0xF9, 0x7E, 0x00])
CBOR_INF_OPERAND = bytes([0xA1, 0x61, 0x61, 0xA1, 0x63]) + b"$in" + bytes([0x81, 0xF9, 0x7C, 0x00])

QUERY = {
    "api_example": spec(0, '{"age":{"$gte":21},"$or":[{"tier":{"$in":["gold","platinum"]}},'
                           '{"$nor":[{"trial":{"$exists":true}}]}]}', USER, '{"age":30}'),
    "every_operator": spec(0, '{"age":{"$eq":21,"$ne":22,"$gt":20,"$gte":21,"$lt":22,"$lte":21},'
                              '"tier":{"$in":["gold"],"$nin":["x"]},"trial":{"$exists":true},'
                              '"name":{"$not":{"$lt":"A"}},"$and":[{"a.b":{"$exists":false}}],'
                              '"$or":[{"/a.b":1},{"x":1}],"$nor":[{"n.x":2}]}', USER),
    "numbers": spec(0, '{"u":{"$gt":-1},"i":{"$lt":18446744073709551615},"m":{"$lte":-9223372036854775808},'
                       '"f":{"$eq":9007199254740993},"p":{"$gt":9007199254740992}}', BIG),
    "strings_bools": spec(0, '{"s":{"$gt":"z","$lt":"\u20ac"},"b":{"$gt":false},"e":{"$lt":"a"}}',
                          '{"s":"\u00e9","b":true,"e":""}', '{"s":"Z","b":false}'),
    "plain_values": spec(0, '{"n":{"x":1.5},"tags":["math","poet"],"z":null,"e":{},"o":{"$eq":{"$k":1}}}',
                         USER, '{"n":{"x":1.5},"tags":["math","poet"],"z":null,"e":{},"o":{"$k":1}}'),
    "pointers": spec(0, '{"/tags/0":"math","/a.b":1,"/":2,"/m~0n":3,"/s~1t":4,"/tags/01":{"$exists":false}}',
                     USER, '{"tags":["math"],"a.b":1,"":2,"m~n":3,"s/t":4}'),
    "nested_logic": spec(0, '{"$or":[{"$and":[{"a":1},{"$nor":[{"b":1}]}]},{"$or":[{"c":{"$not":'
                            '{"$not":{"$in":[1,2]}}}}]}],"$and":[{}]}', '{"a":1}', '{"c":2}', '{"b":1,"a":1}'),
    "canonical_forms": spec(0, '{"$and":[{"a":{"$gt":1}},{"a":{"$lt":5}}],"$or":[{}],"b":{"$eq":{"x":1}}}',
                            '{"a":3,"b":{"x":1}}'),
    "bad_mixed": spec(0, '{"a":{"$gt":1,"b":2}}', USER),
    "bad_unknown": spec(0, '{"$and":[{"a":{"$regex":"x"}}]}'),
    "bad_not_top": spec(0, '{"$not":{"a":1}}'),
    "bad_pointer": spec(0, '{"/a~2":1,"":2}'),
    "bad_operands": spec(0, '{"a":{"$in":1,"$exists":1,"$gt":null,"$not":5},"$or":[]}'),
    "deep": spec(0, '{"a":' + "[" * 300 + "]" * 300 + "}"),
    "deep_logic": spec(0, '{"$and":[' * 130 + "{}" + "]}" * 130),
    "cbor_nan_operand": spec(0, CBOR_NAN_OPERAND, USER),
    "cbor_inf_operand": spec(0, CBOR_INF_OPERAND, USER),
    "filter_full": spec(1, '{"operation":"Update","where":{"age":{"$gte":21}},"fields":{"tier":"gold"},'
                           '"changed":["age","/tags/0"],"transitions":true}', USER, '{"age":22,"tier":"gold"}',
                        '{"age":20,"tier":"gold","tags":["x"]}'),
    "filter_plain": spec(1, '{"operation":null,"fields":{"a.b":1},"changed":["n.x"]}', USER, '{"a":{"b":1}}'),
    "filter_empty": spec(1, '{}', USER),
    "filter_bad": spec(1, '{"operation":"insert","wher":{},"fields":{"":1},"changed":[1],"transitions":1}'),
    "filter_bad_where": spec(1, '{"where":{"a":{"$gt":[]}}}'),
}

for target, seeds in (("write", WRITE), ("filter", FILTER), ("query", QUERY)):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds")
