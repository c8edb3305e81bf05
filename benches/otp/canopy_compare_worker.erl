%% The child of every Erlang/OTP workload: a gen_server that reports when its init is done,
%% answers a ping and swallows a cast, as the Rust sides' child does.
-module(canopy_compare_worker).
-behaviour(gen_server).
-export([start_link/2, init/1, handle_call/3, handle_cast/2]).

start_link(Idx, Notify) ->
    gen_server:start_link(?MODULE, {Idx, Notify}, []).

init({Idx, Notify}) ->
    case Notify of
        none -> ok;
        Pid -> Pid ! {up, Idx, self(), erlang:monotonic_time(nanosecond)}
    end,
    {ok, Idx}.

handle_call({ping, N}, _From, S) -> {reply, N, S}.

handle_cast(tell, S) -> {noreply, S}.
