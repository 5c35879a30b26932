"""The agent actor: the turn loop of docs/architecture.md, run for one (agent, conversation).

A turn: build the model request from the transcript, call the model through the agent's
slot, and for each tool call run the tool (a function, or another agent asked over
request/reply, concurrently when the model asked for several), record the results, and
loop, until the model answers, hands off, or a limit ends the turn with a clear error.

A tool call recorded in the transcript always gets its result recorded next to it (also
the calls a handoff cut short), so no provider is ever sent a history it rejects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, Protocol

import anyio
import msgspec
import structlog

from relaybaton.actors._admission import admit, screen_for_approval, screen_result
from relaybaton.actors._agent import HistoryFilter
from relaybaton.actors._approval import approval_gate, approval_note
from relaybaton.actors._compiled import CompiledAgent, FlowContext
from relaybaton.actors._events import ToolCallEvent
from relaybaton.actors._fork_choice import call_forked
from relaybaton.actors._guarding import Where
from relaybaton.actors._model_call import budget_reply, call_model
from relaybaton.actors._schema_tool import SchemaTool
from relaybaton.actors._steps import next_step as _next_step
from relaybaton.actors._steps import refused_event as _refused_event
from relaybaton.actors._structured import (
    Unanswered,
    answer_problems,
    judge_answer,
    structured_request,
    turn_format,
)
from relaybaton.actors._tools import FunctionTool, ToolContext
from relaybaton.adapters import (
    AssistantMessage,
    ChatMessage,
    ModelRequest,
    RequestMetadata,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from relaybaton.errors import (
    ActorError,
    BudgetExceededError,
    LimitExceededError,
    MaxTurnsExceededError,
    ModelError,
    OwnershipError,
    ToolArgumentsError,
    ToolError,
    UnknownToolError,
)
from relaybaton.runtime import ConversationActor, OwnerHandle, ToolScope
from relaybaton.runtime import _failpoints as failpoints
from relaybaton.runtime._failpoints import failpoint
from relaybaton.runtime._journal_events import Charged
from relaybaton.runtime.messages import BatonPass, ToolRequest

__all__ = ["AgentActor"]

# A failure that ends a turn, or that a tool result tells the model about, is survived
# here; these lines keep its traceback. Levels: debug for a tool's own ToolError (the model
# is told and recovers; it happens often), info for a limit, a refused handoff or a tool
# that raised something else (the model is told too), warning for what someone should look
# at (a model that failed after its retries, an agent used as a tool that failed).
_log = structlog.get_logger("relaybaton.agents")


class _AgentToolInput(msgspec.Struct, forbid_unknown_fields=True):
    input: str


_agent_tool_input = msgspec.json.Decoder(_AgentToolInput)


class _Sink(Protocol):
    """Where a turn's trace events go: the owner's handle or a callee's scope."""

    def record(self, event: msgspec.Struct) -> None: ...


class AgentActor(ConversationActor):
    """Runs one agent for one conversation: as the owner, or as a tool of another agent."""

    def __init__(self, compiled: CompiledAgent, flow: FlowContext) -> None:
        self.compiled = compiled
        self.flow = flow
        self.agent_name = compiled.agent.name
        self.conversations = flow.conversations

    # --- as the owner -----------------------------------------------------------------------

    # The hooks return the turn loop's coroutine rather than awaiting it: one coroutine
    # less per parked conversation for the garbage collector to walk, and one less to run.

    def on_user_turn(self, owner: OwnerHandle) -> Coroutine[Any, Any, None]:
        return self._run_owner(owner, None)

    def on_handoff(self, owner: OwnerHandle, baton: BatonPass) -> Coroutine[Any, Any, None]:
        sender = self.flow.agents.get(baton.sender)
        edge = sender.handoffs_by_target.get(self.agent_name) if sender else None
        return self._run_owner(owner, edge.input_filter if edge else None)

    async def _run_owner(self, owner: OwnerHandle, history_filter: HistoryFilter | None) -> None:
        """Drive the active turn from wherever its transcript stands.

        The transcript says what comes next: an answer whose reply was not recorded yet is
        replied; tool calls without results are run (or wait for a person's decision);
        otherwise the model is asked. So the same loop starts a fresh turn and finishes one
        a crash interrupted, without asking a model or running a tool twice for a recorded
        result.
        """
        agent = self.compiled.agent
        transcript = owner.conversation.transcript
        metadata = RequestMetadata(agent=agent.name, conversation_id=owner.conversation_id)
        guards = self.compiled.guards
        # Where this turn's screens run: one for the turn, built only if it has guardrails.
        where = Where(self.flow, owner.conversation_id, agent.name, owner) if guards.any else None
        if guards.input and transcript and type(transcript[-1]) is UserMessage:
            # A fresh user message: its owner screens it before any model sees it.
            assert where is not None
            text = transcript[-1].text
            screened = await guards.screen("input", guards.input, text, where)
            if screened.blocked is not None:
                owner.reply(screened.blocked)
                return
        turns = 0
        schema, corrected = turn_format(transcript, owner.message_id)  # a client's format
        while True:
            step = _next_step(transcript, self.agent_name)
            if isinstance(step, str):
                if schema is not None:
                    verdict = judge_answer(step, schema, agent.name, corrected, owner.message_id)
                    if isinstance(verdict, UserMessage):  # told what is wrong, asked again
                        corrected = True
                        owner.append(verdict)
                        continue
                    if verdict is not None:  # a second miss: an error, never the answer
                        owner.fail(verdict)
                        return
                if guards.output:  # before the reply reaches the user, not after
                    assert where is not None
                    screened = await guards.screen("output", guards.output, step, where)
                    step = screened.text if screened.blocked is None else screened.blocked
                    if schema is not None and answer_problems(step, schema, "", False):
                        owner.fail("an output guardrail's text does not fit the answer schema")
                        return
                if failpoints.ARMED:
                    failpoint("before_reply")
                owner.reply(step)
                return
            if step:
                chosen = None
                handoffs = self.compiled.handoffs
                if handoffs:
                    for call in step:
                        if call.name in handoffs:
                            chosen = call
                            break
                if chosen is not None:
                    if self._hand_off(owner, step, chosen):
                        return
                    continue
                if await self._run_owned_tools(owner, step):
                    return  # waiting for a person: the turn stays open, paused
                continue
            if turns >= agent.max_turns:
                owner.fail(
                    f"agent {agent.name!r} used its {agent.max_turns} model turns for one user "
                    "message without answering; raise its max_turns if this is expected"
                )
                return
            if owner.conversation.control is not None and owner.halts_before(
                "model", *(() if turns else (f"agent:{agent.name}",))
            ):
                return  # a person paused it, or a breakpoint: the turn waits for a resume
            turns += 1
            try:
                owner.count_model_turn()
            except LimitExceededError as exc:
                _log.info(
                    "turn_limit_reached",
                    conversation_id=owner.conversation_id,
                    agent=agent.name,
                    exc_info=exc,
                )
                owner.fail(str(exc))
                return
            history: Sequence[msgspec.Struct] = (
                transcript if history_filter is None else history_filter(transcript)  # type: ignore[arg-type]
            )
            if guards.redacts_input:
                assert where is not None
                history = await guards.redact_history(history, where)  # type: ignore[arg-type]
            request = ModelRequest(
                instructions=agent.instructions,
                messages=tuple(history),  # type: ignore[arg-type]
                tools=self.compiled.owner_specs,
                metadata=metadata,
            )
            if schema is not None:
                request = structured_request(request, agent.name, schema)
            try:
                message, charge = await self._call_model(request, owner)
            except BudgetExceededError as exc:  # a refusal, said to the user: not a crash
                _log.info("budget_refused", conversation_id=owner.conversation_id, exc_info=exc)
                owner.fail(budget_reply(exc))
                return
            except ModelError as exc:
                _log.warning(
                    "model_call_failed",
                    conversation_id=owner.conversation_id,
                    agent=agent.name,
                    exc_info=exc,
                )
                owner.fail(f"the model of agent {agent.name!r} failed: {exc}")
                return
            if failpoints.ARMED:
                failpoint("after_model_result")
            owner.append(message, charge)  # the answer and its usage: one journal record
            if owner.must_flush:
                await owner.flushed()

    async def _run_owned_tools(self, owner: OwnerHandle, calls: Sequence[ToolCall]) -> bool:
        """Run the calls the owner's model asked for; True if some wait for a person."""
        if owner.conversation.control is not None and owner.halts_before(
            *[f"tool:{call.name}" for call in calls]
        ):
            return True  # halted before them: a person paused it, or a breakpoint
        function_tools = self.compiled.function_tools
        gated = False
        for call in calls:
            tool = function_tools.get(call.name)
            if tool is not None and (
                tool.approval_rule is not None or tool.rules is not None or not tool.retry_safe
            ):
                gated = True
                break
        if not gated:  # the common case: no approvals to check, run them all
            conversation_id = owner.conversation_id
            if len(calls) == 1:  # awaited here: no frame of _run_tools in between
                call = calls[0]
                results = [
                    await self._run_tool(call, conversation_id, (), owner, call.arguments, owner)
                ]
            else:
                results = await self._run_tools(calls, conversation_id, (), owner, owner=owner)
            for result in results:
                if failpoints.ARMED:
                    failpoint("after_tool_effect")
                owner.append(result)
            if owner.must_flush:
                await owner.flushed()
            return False
        return await self._run_gated_tools(owner, calls)

    async def _run_gated_tools(self, owner: OwnerHandle, calls: Sequence[ToolCall]) -> bool:
        conversation = owner.conversation
        runnable: list[tuple[ToolCall, str]] = []
        results: dict[str, ToolResultMessage] = {}
        waiting = False
        function_tools = self.compiled.function_tools
        for call in calls:
            tool = function_tools.get(call.name)
            if tool is None or (
                tool.approval_rule is None and tool.rules is None and tool.retry_safe
            ):
                runnable.append((call, call.arguments))  # the common case: nothing to check
                continue
            gate = approval_gate(conversation, call, tool)
            if gate.kind == "ask" and self.compiled.guards.tool_arguments:
                # Screened before a person sees them: a card number never reaches the inbox.
                gate = await screen_for_approval(self.flow, self.compiled, call, gate, owner)
            if gate.kind == "run":
                if gate.decided and failpoints.ARMED:
                    failpoint("after_approval_decision")
                runnable.append((call, gate.arguments))
            elif gate.kind == "result":
                results[call.id] = refused = ToolResultMessage(
                    call_id=call.id, name=call.name, content=gate.text, is_error=True
                )
                if self.conversations.observed:  # a refusal is news in the trace too
                    owner.record(_refused_event(self.agent_name, call, refused))
            else:
                waiting = owner.paused = True
                if gate.kind == "ask" and tool is not None and gate.rule:
                    owner.request_approval(
                        call_id=call.id,
                        tool=call.name,
                        arguments=gate.arguments,
                        rule=gate.rule,
                        timeout=tool.approval_timeout,
                    )
        if runnable:
            if owner.must_flush:
                await owner.flushed()  # decisions are on disk before effects happen
            ran = await self._run_tools(
                [c for c, _ in runnable],
                owner.conversation_id,
                (),
                owner,
                arguments=[a for _, a in runnable],
                owner=owner,
            )
            results.update((r.call_id, r) for r in ran)
        for call in calls:
            result = results.get(call.id)
            if result is not None:
                if failpoints.ARMED:
                    failpoint("after_tool_effect")
                owner.append(result)
        if owner.must_flush:
            await owner.flushed()
        return waiting

    def _hand_off(self, owner: OwnerHandle, calls: Sequence[ToolCall], chosen: ToolCall) -> bool:
        """Pass the baton as ``chosen`` asks; False if refused and the loop should go on."""
        edge = self.compiled.handoffs[chosen.name]
        target = edge.target
        for call in calls:
            if call is not chosen:
                owner.append(
                    ToolResultMessage(
                        call_id=call.id,
                        name=call.name,
                        content=f"not run: the conversation was handed off to {target}",
                        is_error=True,
                    )
                )
        try:
            owner.handoff(
                target,
                return_to_sender=edge.return_to_sender,
                lease_turns=edge.lease_turns,
                record=ToolResultMessage(
                    call_id=chosen.id, name=chosen.name, content=f"Transferred to {target}."
                ),
            )
        except LimitExceededError as exc:
            _log.info(
                "handoff_refused",
                conversation_id=owner.conversation_id,
                target=target,
                exc_info=exc,
            )
            owner.append(
                ToolResultMessage(
                    call_id=chosen.id, name=chosen.name, content=str(exc), is_error=True
                )
            )
            owner.fail(str(exc))
            return True
        except OwnershipError as exc:
            _log.info(
                "handoff_refused",
                conversation_id=owner.conversation_id,
                target=target,
                exc_info=exc,
            )
            owner.append(
                ToolResultMessage(
                    call_id=chosen.id, name=chosen.name, content=str(exc), is_error=True
                )
            )
            return False
        return True

    # --- as a tool of another agent ---------------------------------------------------------

    async def on_tool_request(self, scope: ToolScope, request: ToolRequest) -> str:
        agent = self.compiled.agent
        messages: list[ChatMessage] = [UserMessage(text=request.input)]
        schema = agent.output_schema
        corrected = False
        for _ in range(agent.max_turns):
            model_request = ModelRequest(
                instructions=agent.instructions,
                messages=tuple(messages),
                tools=self.compiled.tool_specs,  # no handoffs: a callee holds no baton
                metadata=RequestMetadata(agent=agent.name, conversation_id=scope.conversation_id),
            )
            if schema is not None:
                model_request = structured_request(model_request, agent.name, schema)
            try:
                message, charge = await self._call_model(model_request, scope)
            except BudgetExceededError as exc:  # the caller's model is told; nothing crashes
                _log.info("budget_refused", conversation_id=scope.conversation_id, exc_info=exc)
                return Unanswered(budget_reply(exc))
            scope.add_charge(charge)
            messages.append(message)
            if not message.tool_calls:
                problems = answer_problems(message.text, schema, agent.name, corrected)
                if problems is None:
                    return message.text
                if corrected:  # it was told once what is wrong: the caller gets an error
                    return Unanswered(problems)
                corrected = True  # once: the model is told what is wrong, then it fails
                messages.append(UserMessage(text=problems))
                continue
            messages.extend(
                await self._run_tools(message.tool_calls, scope.conversation_id, scope.chain, scope)
            )
        raise MaxTurnsExceededError(
            f"agent {agent.name!r} used its {agent.max_turns} model turns as a tool without "
            "answering",
            limit=agent.max_turns,
        )

    # --- shared -----------------------------------------------------------------------------

    def _call_model(
        self, request: ModelRequest, sink: OwnerHandle | ToolScope
    ) -> Coroutine[Any, Any, tuple[AssistantMessage, Charged]]:
        conversation = (
            sink.conversation
            if isinstance(sink, OwnerHandle)
            else self.conversations.by_id.get(sink.conversation_id)
        )
        control = conversation.control if conversation is not None else None
        if control is not None and control.chose:  # a fork chose this agent's model or prompt
            return call_forked(self.compiled, self.flow, request, sink, control)
        return call_model(self.compiled, self.flow, request, sink)

    async def _run_tools(
        self,
        calls: Sequence[ToolCall],
        conversation_id: str,
        chain: tuple[str, ...],
        sink: _Sink,
        *,
        arguments: Sequence[str] | None = None,
        owner: OwnerHandle | None = None,
    ) -> list[ToolResultMessage]:
        args = list(arguments) if arguments is not None else [c.arguments for c in calls]
        if len(calls) == 1:
            return [await self._run_tool(calls[0], conversation_id, chain, sink, args[0], owner)]
        return await self._run_tools_concurrently(calls, conversation_id, chain, sink, args, owner)

    async def _run_tools_concurrently(  # noqa: PLR0917 - private; one call site passes them all
        self,
        calls: Sequence[ToolCall],
        conversation_id: str,
        chain: tuple[str, ...],
        sink: _Sink,
        args: Sequence[str],
        owner: OwnerHandle | None,
    ) -> list[ToolResultMessage]:
        # Its own method: the closure below makes CPython create a cell for each variable it
        # captures on every call of the function that defines it, even when it is not used.
        results: list[ToolResultMessage | None] = [None] * len(calls)

        async def run(index: int, call: ToolCall) -> None:
            results[index] = await self._run_tool(
                call, conversation_id, chain, sink, args[index], owner
            )

        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(run, index, call)
        return [r for r in results if r is not None]

    async def _run_tool(  # noqa: PLR0917 - private; the two call sites pass them all
        self,
        call: ToolCall,
        conversation_id: str,
        chain: tuple[str, ...],
        sink: _Sink,
        arguments: str,
        owner: OwnerHandle | None,
    ) -> ToolResultMessage:
        clock = self.flow.clock
        tracing = self.conversations.observed
        started = clock.now() if tracing else 0.0
        kind = "function"
        compiled = self.compiled
        try:
            if owner is None or compiled.guards.tool_arguments:
                where = (conversation_id, chain, sink)
                arguments = await admit(
                    self.flow, compiled, call, arguments, where, callee=owner is None
                )
            answer = await self._invoke(call, arguments, conversation_id, chain, owner)
            # A callee that could not answer says why: an error result, not an answer.
            content, is_error = str(answer), type(answer) is Unanswered
        except ToolError as exc:
            _log.debug(
                "tool_refused", conversation_id=conversation_id, tool=call.name, exc_info=exc
            )
            content, is_error = str(exc), True
        except (ActorError, LimitExceededError) as exc:
            _log.warning(
                "agent_tool_failed", conversation_id=conversation_id, tool=call.name, exc_info=exc
            )
            content, is_error = f"agent tool {call.name!r} failed: {exc}", True
        except Exception as exc:  # a tool is user code: its failure is news for the model
            # Info, not warning: raising is how many tools refuse bad arguments, and the
            # model is told and recovers; the traceback is here for whoever looks.
            _log.info("tool_failed", conversation_id=conversation_id, tool=call.name, exc_info=exc)
            content, is_error = f"tool {call.name!r} raised {type(exc).__name__}: {exc}", True
        if compiled.guards.tool_result and not is_error:
            where = (conversation_id, chain, sink)
            content, is_error = await screen_result(self.flow, compiled, call, content, where)
        if call.name in self.compiled.agent_tools:
            kind = "agent"
        if tracing:
            sink.record(
                ToolCallEvent(
                    agent=self.agent_name,
                    tool=call.name,
                    call_id=call.id,
                    tool_kind=kind,
                    latency_s=clock.now() - started,
                    is_error=is_error,
                    arguments=call.arguments[:500],
                    result=content[:500],
                    at=started,
                )
            )
        return ToolResultMessage(
            call_id=call.id, name=call.name, content=content, is_error=is_error
        )

    def _invoke(
        self,
        call: ToolCall,
        arguments: str,
        conversation_id: str,
        chain: tuple[str, ...],
        owner: OwnerHandle | None,
    ) -> Awaitable[object]:
        """What to await for the call's result: a function tool's, or the callee agent's.

        Returns the awaitable rather than awaiting it, so that an agent used as a tool is
        awaited without a frame of ours in between; errors in the call itself raise here.
        """
        function = self.compiled.function_tools.get(call.name)
        if function is not None:
            return self._invoke_function(function, call, arguments, conversation_id, owner)
        agent_tool = self.compiled.agent_tools.get(call.name)
        if agent_tool is None:
            names = sorted([*self.compiled.function_tools, *self.compiled.agent_tools])
            raise UnknownToolError(
                f"unknown tool {call.name!r}; this agent's tools are: {', '.join(names) or 'none'}",
                tool=call.name,
            )
        try:
            text = _agent_tool_input.decode(arguments or "{}").input
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ToolArgumentsError(
                f"invalid arguments for agent tool {call.name!r}: {exc}; "
                'send {"input": "<the request>"}',
                tool=call.name,
            ) from exc
        return self.conversations.ask_agent(
            conversation_id,
            self.agent_name,
            agent_tool.target,
            call.id,
            text,
            chain=chain,
            timeout=agent_tool.timeout,
        )

    async def _invoke_function(
        self,
        function: FunctionTool | SchemaTool,
        call: ToolCall,
        arguments: str,
        conversation_id: str,
        owner: OwnerHandle | None,
    ) -> str:
        conversation = self.conversations.get(conversation_id)
        context = ToolContext(
            conversation_id=conversation_id,
            agent=self.agent_name,
            call_id=call.id,
            user=conversation.user if conversation is not None else "",
            records=conversation.transcript if conversation is not None else (),
            approval_note=approval_note(conversation, call.id),
        )
        if owner is not None:
            function.parse(arguments)  # refuse bad arguments before recording a start
            owner.tool_started(call.id, call.name)
            if owner.must_flush:
                await owner.flushed()
            if failpoints.ARMED:
                failpoint("after_tool_started")
        return await function.invoke(arguments, context)
