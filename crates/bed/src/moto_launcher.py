# moto's own server entry point, run by the venv's python with two changes that remove stalls
# real AWS endpoints do not have. Everything else is moto as pinned in tools/requirements.txt.
#
# 1. A listen backlog big enough for a burst of clients. With werkzeug's 128, fifty handlers
#    starting at once (each with its own connections) overflow it, the kernel drops SYNs and
#    those clients retry after 1 s and 3 s.
# 2. DynamoDB TransactWriteItems keeps, for its rollback, a copy of the items it touches, not of
#    every table it touches. moto deep-copies each named table once per operation of the
#    transaction, so a transaction's cost grows with the table: a queue table holding a few
#    thousand writes makes each 5-operation transaction take hundreds of milliseconds of the one
#    Python process, where DynamoDB's transactions take milliseconds whatever the table's size
#    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html).
#    The outcome is moto's: the same checks, the same errors, the same rollback of every
#    operation when one fails; only the copy is smaller.
import copy
import sys

import werkzeug.serving

werkzeug.serving.BaseWSGIServer.request_queue_size = 4096

import moto.dynamodb.models as ddb  # noqa: E402
from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: E402
from moto.dynamodb.models.table import Table  # noqa: E402


class _TablesByReference:
    """`copy` for moto's DynamoDB backend module: a table is 'copied' as itself (the wrapper
    below restores the touched items instead); anything else is copied as before."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        if isinstance(x, Table):
            return x
        return copy.deepcopy(x, memo)


def _slot(table, key):
    h = DynamoType(key[table.hash_key_attr])
    r = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return h, r


def _read(table, h, r):
    if r is None:
        return table.items.get(h)
    return table.items.get(h, {}).get(r)


def _write(table, h, r, item):
    if r is None:
        if item is None:
            table.items.pop(h, None)
        else:
            table.items[h] = item
    elif item is None:
        if h in table.items:
            table.items[h].pop(r, None)
    else:
        table.items[h][r] = item


def _touched(backend, transact_items):
    """(table, hash, range, a copy of the item or None) for each item the transaction names."""
    out = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op["Item"] if op_type == "Put" else op["Key"]
            h, r = _slot(table, key)
        except (KeyError, StopIteration, AttributeError, TypeError):
            continue  # malformed: moto's own checks reject it before anything changes
        out.append((table, h, r, copy.deepcopy(_read(table, h, r))))
    return out


_moto_transact = ddb.DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    saved = _touched(self, transact_items)
    try:
        return _moto_transact(self, transact_items)
    except BaseException:
        for table, h, r, item in reversed(saved):
            _write(table, h, r, item)
        raise


ddb.copy = _TablesByReference()
ddb.DynamoDBBackend.transact_write_items = _transact_write_items

from moto.server import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
