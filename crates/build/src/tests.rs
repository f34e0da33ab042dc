//! Whole-Dockerfile tests of `parse`, `Instruction::expand` and `stages_needed`, and a
//! no-panic test over pseudo-random input.

use crate::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The kinds of the instructions of the only stage of `FROM a\n<body>`.
fn kinds(body: &str) -> Vec<Kind> {
    let df = parse(&format!("FROM a\n{body}")).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    df.stages[0].instructions.iter().map(|i| i.kind.clone()).collect()
}

fn one(body: &str) -> Kind {
    let mut k = kinds(body);
    assert_eq!(k.len(), 1, "{body:?}");
    k.remove(0)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn every_instruction() {
    let cases: Vec<(&str, Kind)> = vec![
        ("RUN echo hi", Kind::Run(Run { cmd: CmdLine::Shell("echo hi".into()), heredocs: vec![], mounts: vec![], network: None, security: None })),
        ("run [\"a\", \"b\"]", Kind::Run(Run { cmd: CmdLine::Exec(s(&["a", "b"])), heredocs: vec![], mounts: vec![], network: None, security: None })),
        ("RUN --network=none --security=insecure true", Kind::Run(Run { cmd: CmdLine::Shell("true".into()), heredocs: vec![], mounts: vec![], network: Some("none".into()), security: Some("insecure".into()) })),
        ("CMD [\"/bin/sh\"]", Kind::Cmd(CmdLine::Exec(s(&["/bin/sh"])))),
        ("CMD echo $HOME", Kind::Cmd(CmdLine::Shell("echo $HOME".into()))),
        ("CMD []", Kind::Cmd(CmdLine::Exec(vec![]))),
        ("ENTRYPOINT [\"tini\", \"--\"]", Kind::Entrypoint(CmdLine::Exec(s(&["tini", "--"])))),
        ("ENTRYPOINT exec app", Kind::Entrypoint(CmdLine::Shell("exec app".into()))),
        ("ENV a=1 b=\"two words\"", Kind::Env(pairs(&[("a", "1"), ("b", "\"two words\"")]))),
        ("ENV key the rest  of it", Kind::Env(pairs(&[("key", "the rest  of it")]))),
        ("ENV a=", Kind::Env(pairs(&[("a", "")]))),
        ("ENV a\\ b=c", Kind::Env(pairs(&[("a\\ b", "c")]))),
        ("ARG a", Kind::Arg(vec![ArgDecl { name: "a".into(), default: None }])),
        ("ARG a=1 b", Kind::Arg(vec![ArgDecl { name: "a".into(), default: Some("1".into()) }, ArgDecl { name: "b".into(), default: None }])),
        ("LABEL \"com.example\"=\"ACME Inc\" v=1", Kind::Label(pairs(&[("\"com.example\"", "\"ACME Inc\""), ("v", "1")]))),
        ("LABEL legacy value here", Kind::Label(pairs(&[("legacy", "value here")]))),
        ("EXPOSE 80/tcp 53/udp", Kind::Expose(s(&["80/tcp", "53/udp"]))),
        ("VOLUME [\"/a\", \"/b\"]", Kind::Volume(s(&["/a", "/b"]))),
        ("VOLUME /a /b", Kind::Volume(s(&["/a", "/b"]))),
        ("WORKDIR /my dir", Kind::Workdir("/my dir".into())),
        ("USER app:app", Kind::User("app:app".into())),
        ("SHELL [\"/bin/bash\", \"-c\"]", Kind::Shell(s(&["/bin/bash", "-c"]))),
        ("STOPSIGNAL SIGKILL", Kind::StopSignal("SIGKILL".into())),
        ("HEALTHCHECK NONE", Kind::Healthcheck(Healthcheck::default())),
        ("HEALTHCHECK CMD curl -f http://x/", Kind::Healthcheck(Healthcheck { test: Some(s(&["CMD-SHELL", "curl -f http://x/"])), ..Healthcheck::default() })),
        (
            "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1.5s --start-interval=2s --retries=3 CMD [\"true\"]",
            Kind::Healthcheck(Healthcheck {
                test: Some(s(&["CMD", "true"])),
                interval: Some(90_000_000_000),
                timeout: Some(500_000_000),
                start_period: Some(1_500_000_000),
                start_interval: Some(2_000_000_000),
                retries: Some(3),
            }),
        ),
        ("HEALTHCHECK --interval=0s cmd true", Kind::Healthcheck(Healthcheck { test: Some(s(&["CMD-SHELL", "true"])), ..Healthcheck::default() })),
        ("ONBUILD RUN make", Kind::Onbuild("RUN make".into())),
        ("onbuild copy --from=x a b", Kind::Onbuild("copy --from=x a b".into())),
        ("MAINTAINER Jane <jane@example.com>", Kind::Maintainer("Jane <jane@example.com>".into())),
        ("COPY a b /dest/", Kind::Copy(Copy { sources: s(&["a", "b"]), dest: "/dest/".into(), ..Copy::default() })),
        ("COPY [\"a b\", \"/d\"]", Kind::Copy(Copy { sources: s(&["a b"]), dest: "/d".into(), ..Copy::default() })),
        (
            "COPY --from=build --chown=1:2 --chmod=644 --link --parents --exclude=*.md --exclude=x a /d",
            Kind::Copy(Copy {
                sources: s(&["a"]),
                dest: "/d".into(),
                from: Some("build".into()),
                chown: Some("1:2".into()),
                chmod: Some("644".into()),
                link: true,
                parents: true,
                exclude: s(&["*.md", "x"]),
                ..Copy::default()
            }),
        ),
        ("COPY --link=false a b", Kind::Copy(Copy { sources: s(&["a"]), dest: "b".into(), ..Copy::default() })),
        (
            "ADD --checksum=sha256:abc --keep-git-dir https://x/y.tar /d",
            Kind::Add(Copy { sources: s(&["https://x/y.tar"]), dest: "/d".into(), checksum: Some("sha256:abc".into()), keep_git_dir: true, ..Copy::default() }),
        ),
    ];
    for (body, want) in cases {
        assert_eq!(one(body), want, "{body:?}");
    }
}

#[test]
fn run_mounts() {
    let cases: Vec<(&str, Mount)> = vec![
        ("type=bind,target=/x", Mount::Bind { target: "/x".into(), source: None, from: None, rw: false }),
        (
            "target=/x,source=/s,from=build,rw",
            Mount::Bind { target: "/x".into(), source: Some("/s".into()), from: Some("build".into()), rw: true },
        ),
        ("type=bind,dst=/x,readwrite=true", Mount::Bind { target: "/x".into(), source: None, from: None, rw: true }),
        (
            "type=cache,target=/root/.cache,id=go,sharing=locked,mode=0700,uid=1000,gid=1000,ro",
            Mount::Cache {
                id: Some("go".into()),
                target: "/root/.cache".into(),
                sharing: Sharing::Locked,
                from: None,
                source: None,
                mode: Some(0o700),
                uid: Some(1000),
                gid: Some(1000),
                ro: true,
            },
        ),
        (
            "type=cache,target=/c",
            Mount::Cache {
                id: None,
                target: "/c".into(),
                sharing: Sharing::Shared,
                from: None,
                source: None,
                mode: None,
                uid: None,
                gid: None,
                ro: false,
            },
        ),
        ("type=tmpfs,target=/t,size=64m", Mount::Tmpfs { target: "/t".into(), size: Some(64 << 20) }),
        ("type=tmpfs,target=/t", Mount::Tmpfs { target: "/t".into(), size: None }),
        (
            "type=secret,id=aws,target=/run/secrets/aws,required",
            Mount::Secret {
                id: Some("aws".into()),
                source: None,
                target: Some("/run/secrets/aws".into()),
                env: None,
                required: true,
                mode: None,
                uid: None,
                gid: None,
            },
        ),
        ("type=ssh", Mount::Ssh { id: None, target: None, required: false, mode: None, uid: None, gid: None }),
    ];
    for (value, want) in cases {
        let Kind::Run(run) = one(&format!("RUN --mount={value} true")) else { panic!() };
        assert_eq!(run.mounts, vec![want], "{value:?}");
    }
    let Kind::Run(run) = one("RUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b true") else { panic!() };
    assert_eq!(run.mounts.len(), 2);
}

#[test]
fn heredoc_instructions() {
    let df = parse(
        "FROM a\nRUN <<EOF\necho hi\nEOF\nCOPY <<one <<-\"two\" /dest/\n1 $x\none\n\t2 $x\n\ttwo\nRUN echo after",
    )
    .unwrap();
    let ins = &df.stages[0].instructions;
    assert_eq!(ins.len(), 3);
    let Kind::Run(run) = &ins[0].kind else { panic!() };
    assert_eq!(run.cmd, CmdLine::Shell("<<EOF".into()));
    assert_eq!(run.heredocs, vec![Heredoc { name: "EOF".into(), content: "echo hi\n".into(), expand: true }]);
    let Kind::Copy(copy) = &ins[1].kind else { panic!() };
    assert!(copy.sources.is_empty());
    assert_eq!(copy.dest, "/dest/");
    assert_eq!(
        copy.heredocs,
        vec![
            Heredoc { name: "one".into(), content: "1 $x\n".into(), expand: true },
            Heredoc { name: "two".into(), content: "2 $x\n".into(), expand: false },
        ]
    );
    assert_eq!((ins[2].line, ins[2].original.as_str()), (10, "RUN echo after"));
    let expanded = ins[1].expand('\\', &|n| (n == "x").then(|| "X".to_string())).unwrap();
    let Kind::Copy(copy) = expanded.kind else { panic!() };
    assert_eq!(copy.heredocs[0].content, "1 X\n");
    assert_eq!(copy.heredocs[1].content, "2 $x\n");
}

#[test]
fn stages_and_meta_args() {
    let df = parse(
        "# syntax=docker/dockerfile:1.7\nARG BASE=alpine\nARG V\nFROM --platform=$BUILDPLATFORM ${BASE}:3 AS Build\nRUN make\nfrom scratch\nCOPY --from=build /out /",
    )
    .unwrap();
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1.7"));
    assert_eq!(df.escape, '\\');
    assert_eq!(
        df.meta_args,
        vec![
            ArgDecl { name: "BASE".into(), default: Some("alpine".into()) },
            ArgDecl { name: "V".into(), default: None }
        ]
    );
    assert_eq!(df.stages.len(), 2);
    let build = &df.stages[0];
    assert_eq!(
        (build.name.as_deref(), build.base.as_str(), build.platform.as_deref(), build.line),
        (Some("build"), "${BASE}:3", Some("$BUILDPLATFORM"), 4)
    );
    assert_eq!(build.instructions.len(), 1);
    assert_eq!(df.stages[1].name, None);
    let meta = df.meta_arg_values(&|_| None).unwrap();
    assert_eq!(meta, pairs(&[("BASE", "alpine")]));
    let lookup = |n: &str| meta.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(build.expand_base('\\', &lookup).unwrap(), "alpine:3");
    let with_arg = df.meta_arg_values(&|n| (n == "BASE").then(|| "debian".to_string())).unwrap();
    assert_eq!(with_arg, pairs(&[("BASE", "debian")]));
    assert_eq!(
        build.expand_platform('\\', &|n| (n == "BUILDPLATFORM").then(|| "linux/amd64".into())).unwrap().as_deref(),
        Some("linux/amd64")
    );
}

#[test]
fn meta_args_see_earlier_ones() {
    let df = parse("ARG A=1\nARG B=${A}2\nFROM x").unwrap();
    assert_eq!(df.meta_arg_values(&|_| None).unwrap(), pairs(&[("A", "1"), ("B", "12")]));
}

#[test]
fn backtick_escape_dockerfile() {
    let df = parse("# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir c:\\ `\n  && echo done\nCOPY a\\b c:\\dest\\")
        .unwrap();
    let ins = &df.stages[0].instructions;
    assert_eq!(ins[0].original, "RUN dir c:\\   && echo done");
    let Kind::Copy(c) = &ins[1].kind else { panic!() };
    assert_eq!(c.sources, s(&["a\\b"]));
    let e = ins[1].expand('`', &|_| None).unwrap();
    let Kind::Copy(c) = e.kind else { panic!() };
    assert_eq!((c.sources, c.dest), (s(&["a\\b"]), "c:\\dest\\".to_string()));
}

#[test]
fn errors_with_lines() {
    let cases: &[(&str, &str)] = &[
        ("", "file with no instructions"),
        ("# just a comment\n\n", "file with no instructions"),
        ("ARG a", "dockerfile contains no stages to build"),
        ("FROM a\n\n\n\n\n\nFORM b", "Dockerfile line 7: unknown instruction: FORM"),
        ("RUN x\nFROM a", "Dockerfile line 1: no build stage in current context"),
        ("ARG a\nENV b=1\nFROM a", "Dockerfile line 2: no build stage in current context"),
        ("FROM a\n\nENV =x", "Dockerfile line 3: ENV names can not be blank"),
        ("FROM a\nENV", "Dockerfile line 2: ENV requires at least one argument"),
        ("FROM a\nENV onlykey", "Dockerfile line 2: ENV must have two arguments"),
        ("FROM a\nENV a=1 b", "Dockerfile line 2: syntax error - can't find = in \"b\". Must be of the form: name=value"),
        ("FROM a\nLABEL =x", "Dockerfile line 2: LABEL names can not be blank"),
        ("FROM a\nARG =x", "Dockerfile line 2: ARG names can not be blank"),
        ("FROM a\nARG", "Dockerfile line 2: ARG requires at least one argument"),
        ("FROM", "Dockerfile line 1: FROM requires either one or three arguments"),
        ("FROM a b", "Dockerfile line 1: FROM requires either one or three arguments"),
        ("FROM a AS 1st", "Dockerfile line 1: invalid name for build stage: \"1st\", name can't start with a number or contain symbols"),
        ("FROM a AS b$c", "Dockerfile line 1: invalid name for build stage: \"b$c\", name can't start with a number or contain symbols"),
        ("FROM a AS x\nFROM b AS X", "Dockerfile line 2: duplicate stage name \"x\""),
        ("FROM --foo=bar a", "Dockerfile line 1: unknown flag: foo"),
        ("FROM a\nCOPY --foo a b", "Dockerfile line 2: unknown flag: foo"),
        ("FROM a\nADD --from=x a b", "Dockerfile line 2: unknown flag: from"),
        ("FROM a\nCOPY --from a b", "Dockerfile line 2: missing a value on flag: from"),
        ("FROM a\nCOPY --from=a --from=b a b", "Dockerfile line 2: duplicate flag specified: from"),
        ("FROM a\nCOPY --link=maybe a b", "Dockerfile line 2: expecting boolean value for flag link, not: maybe"),
        ("FROM a\nCOPY a", "Dockerfile line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM a\nADD a", "Dockerfile line 2: ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM a\nCOPY a <<EOF\nx\nEOF", "Dockerfile line 2: COPY cannot accept a heredoc as a destination"),
        ("FROM a\nRUN --mount=type=nosuch,target=/x true", "Dockerfile line 2: unsupported mount type \"nosuch\""),
        ("FROM a\nRUN --mount=type=cache,target=/x,bogus=1 true", "Dockerfile line 2: unexpected key 'bogus' in 'bogus=1'"),
        ("FROM a\nRUN --mount=type=cache true", "Dockerfile line 2: mount target is required"),
        ("FROM a\nRUN --mount=type=cache,target=/x,sharing=weird true", "Dockerfile line 2: unsupported sharing value \"weird\""),
        ("FROM a\nRUN --mount=type=bind,target=/x,mode=0700 true", "Dockerfile line 2: mode not allowed for \"bind\" type mounts"),
        ("FROM a\nRUN --mount=type=cache,target=/x,mode=9 true", "Dockerfile line 2: invalid value 9 for mode"),
        ("FROM a\nRUN --mount=type=tmpfs,target=/x,size=lots true", "Dockerfile line 2: invalid value for size: lots"),
        ("FROM a\nRUN --mount=type=bind,target=/x,size=1 true", "Dockerfile line 2: unexpected key 'size' for mount type 'bind'"),
        ("FROM a\nRUN --mount=type=bind,target=/x,from=$X true", "Dockerfile line 2: 'from' doesn't support variable expansion, define alias stage instead"),
        ("FROM a\nRUN --mount=target=/x,source true", "Dockerfile line 2: invalid field 'source' must be a key=value pair"),
        ("FROM a\nRUN --network=bridge true", "Dockerfile line 2: unsupported network mode \"bridge\""),
        ("FROM a\nRUN --security=root true", "Dockerfile line 2: unsupported security mode \"root\""),
        ("FROM a\nRUN [1]", "Dockerfile line 2: when using JSON array syntax, arrays must be comprised of strings only"),
        ("FROM a\nCMD --verbose", "Dockerfile line 2: unknown flag: verbose"),
        ("FROM a\nEXPOSE", "Dockerfile line 2: EXPOSE requires at least one argument"),
        ("FROM a\nVOLUME", "Dockerfile line 2: VOLUME requires at least one argument"),
        ("FROM a\nVOLUME [\"\"]", "Dockerfile line 2: VOLUME specified can not be an empty string"),
        ("FROM a\nWORKDIR", "Dockerfile line 2: WORKDIR requires exactly one argument"),
        ("FROM a\nUSER", "Dockerfile line 2: USER requires exactly one argument"),
        ("FROM a\nSTOPSIGNAL", "Dockerfile line 2: STOPSIGNAL requires exactly one argument"),
        ("FROM a\nMAINTAINER", "Dockerfile line 2: MAINTAINER requires exactly one argument"),
        ("FROM a\nSHELL /bin/sh -c", "Dockerfile line 2: SHELL requires the arguments to be in JSON form"),
        ("FROM a\nSHELL []", "Dockerfile line 2: SHELL requires at least one argument"),
        ("FROM a\nHEALTHCHECK", "Dockerfile line 2: HEALTHCHECK requires at least one argument"),
        ("FROM a\nHEALTHCHECK NONE x", "Dockerfile line 2: HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK --interval=1s NONE", "Dockerfile line 2: unknown flag: interval"),
        ("FROM a\nHEALTHCHECK TEST true", "Dockerfile line 2: unknown type \"TEST\" in HEALTHCHECK (try CMD)"),
        ("FROM a\nHEALTHCHECK CMD", "Dockerfile line 2: missing command after HEALTHCHECK CMD"),
        ("FROM a\nHEALTHCHECK --interval=30 CMD x", "Dockerfile line 2: time: missing unit in duration \"30\""),
        ("FROM a\nHEALTHCHECK --interval=3d CMD x", "Dockerfile line 2: time: unknown unit \"d\" in duration \"3d\""),
        ("FROM a\nHEALTHCHECK --interval=x CMD x", "Dockerfile line 2: time: invalid duration \"x\""),
        ("FROM a\nHEALTHCHECK --timeout=10us CMD x", "Dockerfile line 2: interval \"timeout\" cannot be less than 1ms"),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x", "Dockerfile line 2: --retries cannot be negative (-1)"),
        ("FROM a\nHEALTHCHECK --retries=x CMD x", "Dockerfile line 2: invalid value \"x\" for --retries"),
        ("FROM a\nONBUILD", "Dockerfile line 2: ONBUILD requires at least one argument"),
        ("FROM a\nONBUILD ONBUILD RUN x", "Dockerfile line 2: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM a\nONBUILD FROM x", "Dockerfile line 2: FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD maintainer x", "Dockerfile line 2: MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD NOPE x", "Dockerfile line 2: unknown instruction: NOPE"),
        ("FROM a\nONBUILD COPY --bad a b", "Dockerfile line 2: unknown flag: bad"),
        ("FROM a\nRUN <<EOF\nnever ends", "Dockerfile line 2: unterminated heredoc EOF"),
        ("# escape=x\nFROM a", "Dockerfile line 1: invalid escape token 'x' does not match ` or \\"),
        ("FROM a\nRUN a \\\n  b \\\n  c\nBAD", "Dockerfile line 5: unknown instruction: BAD"),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), *want, "{text:?}");
    }
}

#[test]
fn instruction_expand() {
    let env = |n: &str| match n {
        "a" => Some("A".to_string()),
        "ports" => Some("80 443/tcp".to_string()),
        "dir" => Some("/srv app".to_string()),
        "u" => Some("1000".to_string()),
        _ => None,
    };
    let cases: Vec<(&str, Kind)> = vec![
        ("ENV x=$a y=\"${a} b\" z='$a'", Kind::Env(pairs(&[("x", "A"), ("y", "A b"), ("z", "$a")]))),
        ("ENV legacy \"quoted $a\" tail", Kind::Env(pairs(&[("legacy", "quoted A tail")]))),
        ("LABEL \"k.$a\"=\"v $a\"", Kind::Label(pairs(&[("k.A", "v A")]))),
        (
            "ARG x=${a:-d} y",
            Kind::Arg(vec![
                ArgDecl { name: "x".into(), default: Some("A".into()) },
                ArgDecl { name: "y".into(), default: None },
            ]),
        ),
        ("EXPOSE $ports 53/udp", Kind::Expose(s(&["80", "443/tcp", "53/udp"]))),
        ("VOLUME $dir /b", Kind::Volume(s(&["/srv app", "/b"]))),
        ("WORKDIR $dir/x", Kind::Workdir("/srv app/x".into())),
        ("USER ${u}:${u}", Kind::User("1000:1000".into())),
        ("STOPSIGNAL SIG$a", Kind::StopSignal("SIGA".into())),
        (
            "RUN echo $a",
            Kind::Run(Run {
                cmd: CmdLine::Shell("echo $a".into()),
                heredocs: vec![],
                mounts: vec![],
                network: None,
                security: None,
            }),
        ),
        ("CMD echo $a", Kind::Cmd(CmdLine::Shell("echo $a".into()))),
        ("ENTRYPOINT [\"$a\"]", Kind::Entrypoint(CmdLine::Exec(s(&["$a"])))),
        ("ONBUILD RUN $a", Kind::Onbuild("RUN $a".into())),
        (
            "COPY --chown=$u:$u --chmod=${m:-755} --from=$a --exclude=$a.md src/$a \"$dir\" /dst/$a/",
            Kind::Copy(Copy {
                sources: s(&["src/A", "/srv app"]),
                dest: "/dst/A/".into(),
                chown: Some("1000:1000".into()),
                chmod: Some("755".into()),
                from: Some("A".into()),
                exclude: s(&["A.md"]),
                ..Copy::default()
            }),
        ),
        (
            "RUN --mount=type=cache,target=/c/$a,id=$a true",
            Kind::Run(Run {
                cmd: CmdLine::Shell("true".into()),
                heredocs: vec![],
                mounts: vec![Mount::Cache {
                    id: Some("A".into()),
                    target: "/c/A".into(),
                    sharing: Sharing::Shared,
                    from: None,
                    source: None,
                    mode: None,
                    uid: None,
                    gid: None,
                    ro: false,
                }],
                network: None,
                security: None,
            }),
        ),
    ];
    for (body, want) in cases {
        let df = parse(&format!("FROM a\n{body}")).unwrap();
        let got = df.stages[0].instructions[0].expand('\\', &env).unwrap();
        assert_eq!(got.kind, want, "{body:?}");
        assert_eq!(got.original, body);
    }
}

#[test]
fn expand_error_names_line() {
    let df = parse("FROM a\n\nWORKDIR ${nope:?must be set}").unwrap();
    assert_eq!(
        df.stages[0].instructions[0].expand('\\', &|_| None).unwrap_err().to_string(),
        "Dockerfile line 3: failed to process \"${nope:?must be set}\": nope: must be set"
    );
}

#[test]
fn env_sees_environment_before_the_line() {
    // Docker's documented example: `ENV abc=bye def=$abc` gives def the old abc.
    let df = parse("FROM a\nENV abc=hello\nENV abc=bye def=$abc").unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    for ins in &df.stages[0].instructions {
        let snapshot = env.clone();
        let lookup = |n: &str| snapshot.iter().rev().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let Kind::Env(p) = ins.expand('\\', &lookup).unwrap().kind else { panic!() };
        env.extend(p);
    }
    assert_eq!(env, pairs(&[("abc", "hello"), ("abc", "bye"), ("def", "hello")]));
}

#[test]
fn stages_needed_table() {
    let text = "ARG BASE=base\n\
        FROM alpine AS base\n\
        FROM base AS deps\n\
        FROM golang AS tools\n\
        FROM ${BASE} AS build\n\
        COPY --from=deps /a /a\n\
        RUN --mount=type=bind,from=tools,target=/t true\n\
        FROM scratch AS other\n\
        COPY --from=0 /x /x\n\
        FROM scratch\n\
        COPY --from=build /out /\n\
        COPY --from=docker.io/library/busybox /bin/sh /sh\n";
    let df = parse(text).unwrap();
    let cases: &[(Option<&str>, &[usize])] = &[
        (None, &[0, 1, 2, 3, 5]),
        (Some("build"), &[0, 1, 2, 3]),
        (Some("BUILD"), &[0, 1, 2, 3]),
        (Some("other"), &[0, 4]),
        (Some("base"), &[0]),
        (Some("tools"), &[2]),
    ];
    for (target, want) in cases {
        assert_eq!(stages_needed(&df, *target).unwrap(), want.to_vec(), "{target:?}");
    }
    assert_eq!(stages_needed(&df, Some("x")).unwrap_err().to_string(), "target stage \"x\" could not be found");
    let df = parse("FROM a\nCOPY --from=1 /x /x\nFROM b").unwrap();
    assert_eq!(stages_needed(&df, None).unwrap(), vec![1],);
    assert_eq!(stages_needed(&df, Some("0")).unwrap_err().to_string(), "target stage \"0\" could not be found");
    let df = parse("FROM a AS one\nCOPY --from=1 /x /x\nFROM b").unwrap();
    assert_eq!(
        stages_needed(&df, Some("one")).unwrap_err().to_string(),
        "Dockerfile line 2: invalid from flag value 1: refers to current or future build stage"
    );
}

/// A tiny xorshift generator: deterministic pseudo-random input without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_input_never_panics() {
    const PIECES: &[&str] = &[
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ENV ",
        "ARG ",
        "LABEL ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "CMD ",
        "SHELL ",
        "EXPOSE ",
        "VOLUME ",
        "WORKDIR ",
        "USER ",
        "STOPSIGNAL ",
        "AS ",
        "--mount=",
        "type=cache,",
        "target=",
        "--from=",
        "--interval=",
        "--",
        "=",
        "\"",
        "'",
        "$",
        "{",
        "}",
        ":-",
        ":?",
        "+",
        "\\",
        "`",
        "<<",
        "<<-",
        "EOF",
        "\n",
        "\n",
        " ",
        "\t",
        "[",
        "]",
        "\"a\"",
        ",",
        "#",
        "# escape=`\n",
        "*",
        "**",
        "!",
        "?",
        "/",
        "[a-",
        "..",
        "x",
        "é",
        "\r",
        "0",
        "1m",
        "NONE",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..4000 {
        let mut text = String::new();
        let len = rng.next() % 40;
        for _ in 0..len {
            if rng.next() & 7 == 0 {
                // Raw bytes too, made valid UTF-8 by lossy conversion.
                let b = [rng.next() as u8, rng.next() as u8];
                text.push_str(&String::from_utf8_lossy(&b));
            } else {
                text.push_str(PIECES[(rng.next() % PIECES.len() as u64) as usize]);
            }
        }
        let input = if round & 1 == 0 { format!("FROM a\n{text}") } else { text.clone() };
        if let Ok(df) = parse(&input) {
            let _ = stages_needed(&df, None);
            let _ = df.meta_arg_values(&|_| None);
            for stage in &df.stages {
                let _ = stage.expand_base(df.escape, &|_| Some("v".into()));
                for ins in &stage.instructions {
                    let _ = ins.expand(df.escape, &|_| Some("v w".into()));
                }
            }
        }
        let _ = expand_word(&text, '\\', &|_| Some("x".into()));
        let _ = expand_words(&text, '`', &|_| None);
        let _ = expand_heredoc(&text, '\\', &|_| Some("$y".into()));
        if let Ok(ig) = Ignore::new(&text) {
            let _ = ig.matches(&text);
            let _ = ig.matches("a/b/c.md");
            let _ = ig.can_skip_dir("a");
        }
    }
}
