# moto's own server entry point, run by the venv's python with three changes that remove costs
# real AWS endpoints do not have (1, 2, 4) and two that add behaviours of AWS's (3, 5).
# Everything else is moto as pinned in tools/requirements.txt.
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
# 4. A condition expression parsed once. moto parses ConditionExpression text on every call, in
#    Python; for the fallback's queueing transaction (four conditions) that was about 40 % of
#    the transaction's time, and the bed's DynamoDB process the bed's limit on queued writes a
#    second. The parsed condition is kept by its text, names and values (a bounded map): the
#    parse is a pure function of them and evaluating the parsed tree only reads it, so every
#    outcome and error is moto's.
#
# And two changes that add what AWS does and moto does not:
#
# 3. Transaction conflicts. moto applies a transaction at once, so two never overlap; in
#    DynamoDB a transaction holds its items while it runs, and "an item within a
#    TransactWriteItems request is part of another ongoing transaction" cancels the second
#    (TransactionCanceledException, reason TransactionConflict for that item), as "a PutItem,
#    UpdateItem, or DeleteItem request for an item [that] conflicts with an ongoing
#    TransactWriteItems request" fails with TransactionConflictException
#    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-conflict-handling).
#    Here a transaction that starts holds its items for COSTOP_BED_DYNAMODB_TRANSACTION_MS
#    (the bed sets it; 0 turns this off). A hot item written by every transaction, such as a
#    single counter, is cancelled here as it would be there.
# 5. One load balancer per target group. An Application Load Balancer's target group serves at
#    most one load balancer ("Load balancers per target group: 1", not adjustable:
#    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html);
#    a listener or rule that would forward to a group another load balancer's rules already
#    forward to is refused with TargetGroupAssociationLimit. moto accepts it, and records a
#    group's load balancers only when a listener or rule is created; here every change of a
#    forward (CreateListener, ModifyListener, CreateRule, ModifyRule) is checked first and the
#    groups' load balancers (DescribeTargetGroups' LoadBalancerArns) are recomputed after it.
import copy
import inspect
import json
import os
import sys
import threading
import time

import werkzeug.serving

werkzeug.serving.BaseWSGIServer.request_queue_size = 4096

import moto.dynamodb.comparisons as ddb_comparisons  # noqa: E402
import moto.dynamodb.models as ddb  # noqa: E402
import moto.dynamodb.models.table as ddb_table  # noqa: E402
from moto.dynamodb.exceptions import (  # noqa: E402
    ERROR_TYPE_PREFIX,
    DynamodbException,
    TransactionCanceledException,
)
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


def _named(backend, transact_items):
    """Per operation of the transaction, (table, hash, range) of the item it names, or None
    where the operation is malformed (moto's own checks reject it before anything changes)."""
    out = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                out.append(None)
                continue
            key = op["Item"] if op_type == "Put" else op["Key"]
            out.append((table, *_slot(table, key)))
        except (KeyError, StopIteration, AttributeError, TypeError):
            out.append(None)
    return out


_WINDOW = float(os.environ.get("COSTOP_BED_DYNAMODB_TRANSACTION_MS", "0")) / 1000.0
# (table name, hash, range) -> when the transaction holding the item ends (monotonic seconds).
_held = {}
_held_lock = threading.Lock()
_in_transaction = threading.local()


class TransactionConflictException(DynamodbException):
    error_type = ERROR_TYPE_PREFIX + "TransactionConflictException"

    def __init__(self):
        super().__init__(
            self.error_type, message="Transaction is ongoing for the item"
        )


def _hold(named):
    """Cancel the transaction if one of its items is held by another; else hold them."""
    if _WINDOW <= 0:
        return
    now = time.monotonic()
    slots = [None if n is None else (n[0].name, n[1], n[2]) for n in named]
    with _held_lock:
        if len(_held) > 10000:
            for k in [k for k, end in _held.items() if end <= now]:
                del _held[k]
        conflicts = [s is not None and _held.get(s, 0.0) > now for s in slots]
        if any(conflicts):
            raise TransactionCanceledException(
                [
                    ("TransactionConflict", "Transaction is ongoing for the item", None)
                    if c
                    else (None, None, None)
                    for c in conflicts
                ]
            )
        for s in slots:
            if s is not None:
                _held[s] = now + _WINDOW


def _held_now(table_name, key_attrs, backend):
    table = backend.tables.get(table_name)
    if table is None or key_attrs is None:
        return False
    try:
        h, r = _slot(table, key_attrs)
    except (KeyError, TypeError, AttributeError):
        return False
    with _held_lock:
        return _held.get((table.name, h, r), 0.0) > time.monotonic()


_moto_transact = ddb.DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    named = _named(self, transact_items)
    _hold(named)
    saved = [(n[0], n[1], n[2], copy.deepcopy(_read(*n))) for n in named if n is not None]
    _in_transaction.active = True
    try:
        return _moto_transact(self, transact_items)
    except BaseException:
        for table, h, r, item in reversed(saved):
            _write(table, h, r, item)
        raise
    finally:
        _in_transaction.active = False


def _single_write(name, key_argument):
    moto_op = getattr(ddb.DynamoDBBackend, name)

    def op(self, table_name, *args, **kwargs):
        if _WINDOW > 0 and not getattr(_in_transaction, "active", False):
            key = args[0] if args else kwargs.get(key_argument)
            if _held_now(table_name, key, self):
                raise TransactionConflictException()
        return moto_op(self, table_name, *args, **kwargs)

    return op


_parsed = {}
_parsed_lock = threading.Lock()


def _cached_filter_expression(expr, names, values):
    """moto's parsed condition, kept by its text, names and values: the parse is pure and the
    parsed tree is only read when evaluated (change 4)."""
    try:
        key = (
            expr,
            json.dumps(names, sort_keys=True),
            json.dumps(values, sort_keys=True),
        )
    except (TypeError, ValueError):
        return _moto_filter_expression(expr, names, values)
    with _parsed_lock:
        op = _parsed.get(key)
    if op is None:
        op = _moto_filter_expression(expr, names, values)
        with _parsed_lock:
            if len(_parsed) >= 4096:
                _parsed.clear()
            _parsed[key] = op
    return op


_moto_filter_expression = ddb_comparisons.get_filter_expression
ddb.get_filter_expression = _cached_filter_expression
ddb_table.get_filter_expression = _cached_filter_expression
ddb.copy = _TablesByReference()
ddb.DynamoDBBackend.transact_write_items = _transact_write_items
ddb.DynamoDBBackend.put_item = _single_write("put_item", "item_attrs")
ddb.DynamoDBBackend.update_item = _single_write("update_item", "key")
ddb.DynamoDBBackend.delete_item = _single_write("delete_item", "key")

import moto.elbv2.models as elbv2  # noqa: E402
from moto.elbv2.exceptions import ELBClientError  # noqa: E402


class TargetGroupAssociationLimitError(ELBClientError):
    def __init__(self):
        super().__init__(
            "TargetGroupAssociationLimit",
            "You've reached the limit on the number of load balancers per target group.",
        )


def _forwarded_groups(backend, actions):
    """The target groups `actions` (FakeActions or the API's action dicts) forward to."""
    groups = set()
    for action in actions or []:
        data = action.data if isinstance(action, elbv2.FakeAction) else action
        if str(data.get("Type", "")).lower() == "forward":
            groups.update(backend._get_target_group_arns_from(action_data=data))
    return groups


def _load_balancers_using(backend):
    """Target group ARN -> the load balancers whose listeners or rules forward to it."""
    using = {}
    for lb in backend.load_balancers.values():
        for listener in lb.listeners.values():
            for rule in listener.rules.values():
                for group in _forwarded_groups(backend, rule.actions):
                    using.setdefault(group, set()).add(lb.arn)
    return using


def _listener_lb(backend, listener_arn):
    return backend.describe_listeners(None, [listener_arn])[0].load_balancer_arn


def _rule_lb(backend, rule_arn):
    return _listener_lb(backend, backend.describe_rules(None, [rule_arn])[0].listener_arn)


def _one_load_balancer_per_group(name, lb_of):
    """moto's `name`, refused with TargetGroupAssociationLimit when its actions forward to a
    group another load balancer uses (change 5). A call moto itself refuses (an unknown
    listener or rule) goes on to moto's own error."""
    moto_op = getattr(elbv2.ELBv2Backend, name)
    signature = inspect.signature(moto_op)

    def op(self, *args, **kwargs):
        call = signature.bind(self, *args, **kwargs).arguments
        try:
            lb = lb_of(self, call)
        except Exception:  # moto's op reports its own error for what cannot be found
            lb = None
        if lb is not None:
            using = _load_balancers_using(self)
            for group in _forwarded_groups(self, call.get("actions")):
                if using.get(group, set()) - {lb}:
                    raise TargetGroupAssociationLimitError()
        result = moto_op(self, *args, **kwargs)
        using = _load_balancers_using(self)
        for arn, group in self.target_groups.items():
            group.load_balancer_arns = sorted(using.get(arn, ()))
        return result

    return op


elbv2.ELBv2Backend.create_listener = _one_load_balancer_per_group(
    "create_listener", lambda b, c: c["load_balancer_arn"]
)
elbv2.ELBv2Backend.modify_listener = _one_load_balancer_per_group(
    "modify_listener", lambda b, c: _listener_lb(b, c["arn"])
)
elbv2.ELBv2Backend.create_rule = _one_load_balancer_per_group(
    "create_rule", lambda b, c: _listener_lb(b, c["listener_arn"])
)
elbv2.ELBv2Backend.modify_rule = _one_load_balancer_per_group(
    "modify_rule", lambda b, c: _rule_lb(b, c["rule_arn"])
)

from moto.server import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
