%% The Erlang/OTP side of canopy's comparison (benches/compare): the same workloads, written
%% with OTP's own supervisor and gen_server. Run by the harness as
%%   erl -noshell +S N:N -pa EBIN -run canopy_compare main full|quick|tiny WORKLOAD...
%% which prints one line per workload, "RESULT <workload> <json list of metrics>", and
%%   erl -noshell +S N:N -pa EBIN -run canopy_compare serve
%% which starts a 1,000-child application, prints READY and stops when SIGTERM arrives (the VM's
%% default SIGTERM handling is init:stop(), which stops the application's tree in order).
-module(canopy_compare).
-behaviour(supervisor).
-behaviour(application).
-export([main/1, serve/0, init/1, start/2, stop/1]).

-define(BIG, 1000000000).

%% ------------------------------------------------------------------------------------------------
%% Entry points

main([Mode | Workloads]) ->
    Sizes = sizes(Mode),
    %% The restart workloads kill thousands of children: no supervisor report for each.
    logger:set_primary_config(level, none),
    lists:foreach(
      fun(W) ->
              try run(W, Sizes) of
                  Metrics -> io:format("RESULT ~s ~s~n", [W, json(Metrics)])
              catch
                  Class:Reason:Stack ->
                      io:format("ERROR ~s ~p:~p ~p~n", [W, Class, Reason, Stack])
              end
      end, Workloads),
    erlang:halt(0).

serve() ->
    App = {application, canopy_compare_app,
           [{description, "canopy comparison: SIGTERM to exit"}, {vsn, "1"}, {modules, []},
            {registered, []}, {applications, [kernel, stdlib]},
            {mod, {?MODULE, []}}]},
    ok = application:load(App),
    ok = application:start(canopy_compare_app),
    io:format("READY~n").

start(_Type, _Args) ->
    supervisor:start_link(?MODULE, {static, one_for_one, 1000, 5000, none}).

stop(_State) -> ok.

%% ------------------------------------------------------------------------------------------------
%% Supervisor callback

init({static, Strategy, N, Shutdown, Notify}) ->
    {ok, {#{strategy => Strategy, intensity => ?BIG, period => 3600},
          [child(I, Shutdown, Notify) || I <- lists:seq(0, N - 1)]}};
init({dynamic, Shutdown}) ->
    {ok, {#{strategy => simple_one_for_one, intensity => ?BIG, period => 3600},
          [#{id => w, start => {canopy_compare_worker, start_link, [0, none]},
             restart => temporary, shutdown => Shutdown}]}}.

child(I, Shutdown, Notify) ->
    #{id => I, start => {canopy_compare_worker, start_link, [I, Notify]},
      restart => permanent, shutdown => Shutdown}.

%% ------------------------------------------------------------------------------------------------
%% Workloads

sizes("quick") ->
    #{start_calls => 300, sup_starts => 100, kills_one => 400, kills_ten => 60, rounds_1k => 2,
      rounds_big => 1, asks => 20000, tells => 200000, memory_children => 20000};
sizes("tiny") ->
    #{start_calls => 5, sup_starts => 3, kills_one => 5, kills_ten => 2, rounds_1k => 1,
      rounds_big => 1, asks => 2000, tells => 1000, memory_children => 100};
sizes(_) ->
    #{start_calls => 1000, sup_starts => 300, kills_one => 2000, kills_ten => 200, rounds_1k => 5,
      rounds_big => 2, asks => 100000, tells => 1000000, memory_children => 100000}.

run("start_child_static", #{start_calls := N}) ->
    Sup = start_sup({static, one_for_one, 0, 5000, none}),
    Samples = [timed(fun() -> {ok, _} = supervisor:start_child(Sup, child(I, 5000, none)) end)
               || I <- lists:seq(0, N - 1)],
    stop_sup(Sup),
    [lat("start_child_static", Samples)];
run("start_child_dynamic", #{start_calls := N}) ->
    Sup = start_sup({dynamic, 5000}),
    Samples = [timed(fun() -> {ok, _} = supervisor:start_child(Sup, []) end)
               || _ <- lists:seq(1, N)],
    stop_sup(Sup),
    [lat("start_child_dynamic", Samples)];
run("supervisor_start_1", #{sup_starts := N}) ->
    Samples = [begin
                   T0 = now_ns(),
                   Sup = start_sup({static, one_for_one, 1, 5000, none}),
                   T = now_ns() - T0,
                   stop_sup(Sup),
                   T
               end || _ <- lists:seq(1, N)],
    [lat("supervisor_start_1", Samples)];
run("restart_one_for_one" = W, #{kills_one := K}) -> [lat(W, restart(one_for_one, 1, K))];
run("restart_one_for_all_10" = W, #{kills_ten := K}) -> [lat(W, restart(one_for_all, 10, K))];
run("restart_rest_for_one_10" = W, #{kills_ten := K}) -> [lat(W, restart(rest_for_one, 10, K))];
run("static_" ++ Rest, Sizes) ->
    {N, Policy, PolicyName} = static_params(Rest),
    Rounds = case N > 1000 of true -> maps:get(rounds_big, Sizes); false -> maps:get(rounds_1k, Sizes) end,
    Pairs = [static_round(N, Policy) || _ <- lists:seq(1, Rounds)],
    Stop = metric("ordered_shutdown_" ++ integer_to_list(N) ++ "_" ++ PolicyName, "us/child",
                  false, [S || {_, S} <- Pairs]),
    case Policy of
        5000 -> [metric("static_start_" ++ integer_to_list(N), "us/child", false,
                        [S || {S, _} <- Pairs]), Stop];
        _ -> [Stop]
    end;
run("dynamic_" ++ Size, #{rounds_big := Rounds}) ->
    N = list_to_integer(Size),
    Pairs = [dynamic_round(N) || _ <- lists:seq(1, Rounds)],
    [metric("dynamic_start_" ++ Size, "us/child", false, [S || {S, _} <- Pairs]),
     metric("parallel_shutdown_" ++ Size, "us/child", false, [S || {_, S} <- Pairs])];
run("ask", #{asks := N}) ->
    {ok, Pid} = canopy_compare_worker:start_link(0, none),
    Batch = 1000,
    Samples = [begin
                   T0 = now_ns(),
                   ask_loop(Pid, Batch),
                   (now_ns() - T0) / Batch
               end || _ <- lists:seq(1, N div Batch)],
    unlink(Pid),
    exit(Pid, kill),
    [metric("ask_direct", "ns", false, Samples)];
run("tell", #{tells := N}) ->
    Pids = [begin {ok, P} = canopy_compare_worker:start_link(I, none), P end
            || I <- lists:seq(0, 99)],
    Tuple = list_to_tuple(Pids),
    T0 = now_ns(),
    tell_loop(Tuple, 0, N),
    %% Messages between two processes arrive in order: once each actor has answered a call made
    %% after the casts, it has handled every cast.
    [gen_server:call(P, {ping, 0}, infinity) || P <- Pids],
    T = (now_ns() - T0) / N,
    [begin unlink(P), exit(P, kill) end || P <- Pids],
    [metric("tell_100_actors", "ns", false, [T])];
run("memory_static", #{memory_children := N}) ->
    Before = rss(),
    Sup = start_sup({static, one_for_one, N, 5000, none}),
    Per = (rss() - Before) / N,
    stop_sup(Sup),
    [metric("memory_static", "B/child", false, [Per])];
run("memory_dynamic", #{memory_children := N}) ->
    Before = rss(),
    Sup = start_sup({dynamic, 5000}),
    [{ok, _} = supervisor:start_child(Sup, []) || _ <- lists:seq(1, N)],
    Per = (rss() - Before) / N,
    stop_sup(Sup),
    [metric("memory_dynamic", "B/child", false, [Per])].

restart(Strategy, N, Kills) ->
    Sup = start_sup({static, Strategy, N, 5000, self()}),
    Kids0 = wait_up(N, #{}),
    Restarted = case Strategy of one_for_one -> 1; _ -> N end,
    {Samples, _} = lists:foldl(
                     fun(_, {Acc, Kids}) ->
                             First = maps:get(0, Kids),
                             T0 = now_ns(),
                             exit(First, kill),
                             {Kids1, Latest} = wait_up_latest(Restarted, Kids, T0),
                             _ = supervisor:count_children(Sup),
                             {[Latest - T0 | Acc], Kids1}
                     end, {[], Kids0}, lists:seq(1, Kills)),
    stop_sup(Sup),
    lists:reverse(Samples).

static_round(N, Policy) ->
    T0 = now_ns(),
    Sup = start_sup({static, one_for_one, N, Policy, none}),
    T1 = now_ns(),
    stop_sup(Sup),
    T2 = now_ns(),
    {(T1 - T0) / N / 1000, (T2 - T1) / N / 1000}.

dynamic_round(N) ->
    Sup = start_sup({dynamic, 5000}),
    T0 = now_ns(),
    [{ok, _} = supervisor:start_child(Sup, []) || _ <- lists:seq(1, N)],
    T1 = now_ns(),
    stop_sup(Sup),
    T2 = now_ns(),
    {(T1 - T0) / N / 1000, (T2 - T1) / N / 1000}.

%% ------------------------------------------------------------------------------------------------
%% Helpers

static_params(Rest) ->
    [Size | PolicyParts] = string:split(Rest, "_"),
    PolicyName = lists:flatten(PolicyParts),
    Policy = case PolicyName of
                 "timeout" -> 5000;
                 "brutal_kill" -> brutal_kill;
                 "infinity" -> infinity
             end,
    {list_to_integer(Size), Policy, PolicyName}.

start_sup(Args) ->
    {ok, Sup} = supervisor:start_link(?MODULE, Args),
    Sup.

%% Stops a supervisor the way its own parent would (exit shutdown) and waits until it is gone.
stop_sup(Sup) ->
    unlink(Sup),
    Ref = erlang:monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, process, Sup, _} -> ok end.

wait_up(0, Kids) -> Kids;
wait_up(N, Kids) ->
    receive {up, Idx, Pid, _} -> wait_up(N - 1, Kids#{Idx => Pid}) end.

wait_up_latest(0, Kids, Latest) -> {Kids, Latest};
wait_up_latest(N, Kids, Latest) ->
    receive {up, Idx, Pid, At} -> wait_up_latest(N - 1, Kids#{Idx => Pid}, max(Latest, At))
    after 120000 -> error(children_did_not_come_up)
    end.

ask_loop(_, 0) -> ok;
ask_loop(Pid, K) ->
    K = gen_server:call(Pid, {ping, K}, infinity),
    ask_loop(Pid, K - 1).

tell_loop(_, N, N) -> ok;
tell_loop(Pids, I, N) ->
    gen_server:cast(element(I rem 100 + 1, Pids), tell),
    tell_loop(Pids, I + 1, N).

timed(F) ->
    T0 = now_ns(),
    F(),
    now_ns() - T0.

now_ns() -> erlang:monotonic_time(nanosecond).

%% The resident set of the VM, in bytes, as the Rust sides read it.
rss() ->
    {ok, Statm} = file:read_file("/proc/self/statm"),
    [_, Pages | _] = string:lexemes(binary_to_list(Statm), " \n"),
    list_to_integer(Pages) * page_size().

page_size() ->
    list_to_integer(string:trim(os:cmd("getconf PAGESIZE"))).

lat(Name, Samples) -> metric(Name, "ns", true, Samples).

metric(Name, Unit, P99, Samples) -> {Name, Unit, P99, Samples}.

json(Metrics) ->
    Items = [io_lib:format("{\"name\":\"~s\",\"unit\":\"~s\",\"p99\":~s,\"samples\":[~s]}",
                           [N, U, P, lists:join(",", [num(S) || S <- Ss])])
             || {N, U, P, Ss} <- Metrics],
    ["[", lists:join(",", Items), "]"].

num(X) -> float_to_list(float(X), [{decimals, 3}]).
