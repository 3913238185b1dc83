//! The AWS endpoint is bound from the start and answers the real `aws` CLI
//! with an AWS-format error until each service exists (issue 3).

use nuage_testkit::server::NuageServer;

#[test]
fn aws_cli_gets_a_clear_not_available_error() {
    let s = NuageServer::start(env!("CARGO_BIN_EXE_nuage"));
    let run = |args: &[&str]| {
        std::process::Command::new("aws")
            .args(args)
            .env("AWS_CONFIG_FILE", s.dir.join("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", s.dir.join("aws-credentials"))
            .env("AWS_PROFILE", "nuage")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .expect("run aws")
    };
    // Not sqs: aws-cli v1 replaces a configured endpoint_url with AWS's own
    // SQS (and EMR) endpoints for known regions unless --endpoint-url is given.
    for args in [
        &["s3", "ls"][..],
        &["iam", "list-users"],
        &["ec2", "describe-instances"],
        &["cloudformation", "list-stacks"],
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail for now");
        assert!(
            err.contains("NotImplemented") && err.contains("not available in nuage yet"),
            "{args:?}: {err}"
        );
    }
}
