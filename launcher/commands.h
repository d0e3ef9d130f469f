// The table of `ecf8` subcommands. Each lives in its own cmd_*.cpp file.
#pragma once

#include <string>
#include <vector>

namespace ecf8 {

using CommandArgs = std::vector<std::string>;

struct Command {
    const char* name;
    const char* summary;  // one line for `ecf8 --help`
    const char* usage;    // full text for `ecf8 NAME --help`
    int (*run)(const CommandArgs& args);
};

const std::vector<Command>& all_commands();

int cmd_compress(const CommandArgs& args);
int cmd_decompress(const CommandArgs& args);
int cmd_verify(const CommandArgs& args);
int cmd_inspect(const CommandArgs& args);
int cmd_bench(const CommandArgs& args);
int cmd_bench_serve(const CommandArgs& args);  // `ecf8 bench serve`, dispatched by cmd_bench
int cmd_demo(const CommandArgs& args);
int cmd_synth(const CommandArgs& args);
int cmd_plan(const CommandArgs& args);
int cmd_shard(const CommandArgs& args);
int cmd_verify_shards(const CommandArgs& args);
int cmd_unshard(const CommandArgs& args);
int cmd_run(const CommandArgs& args);
int cmd_tokenize(const CommandArgs& args);
int cmd_detokenize(const CommandArgs& args);

}  // namespace ecf8
