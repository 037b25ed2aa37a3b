//! EC2 for the commands' `--live` flags, built only with the `live` cargo feature (decision
//! 0005): the AWS SDK (credentials from its default chain) behind the client-side rate limiter,
//! on a one-thread runtime.

use cloud::aws::{AwsEc2, AwsSettings};
use cloud::model::InstanceTypeInfo;
use cloud::{CloudError, Ec2 as _, Guarded, RetryPolicy};

use crate::outcome::CommandError;

/// Runs `f` with an EC2 client for `region` (the SDK's chain when `None`) and `endpoint`.
pub fn with_ec2<T>(
    region: Option<String>,
    endpoint: Option<String>,
    f: impl AsyncFnOnce(&Guarded<AwsEc2>) -> Result<T, CommandError>,
) -> Result<T, CommandError> {
    let settings = AwsSettings {
        region,
        ec2_endpoint: endpoint,
        ..AwsSettings::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let ec2 = AwsEc2::new(&settings)
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        f(&Guarded::new(ec2, RetryPolicy::default())).await
    })
}

/// EC2's description of each of `names` (`None` for a type EC2 does not know): one
/// DescribeInstanceTypes each, since EC2 refuses a whole call for one name it does not know.
pub fn describe_types(
    region: Option<String>,
    endpoint: Option<String>,
    names: &[String],
) -> Result<Vec<Option<InstanceTypeInfo>>, CommandError> {
    with_ec2(region, endpoint, async |ec2| {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match ec2
                .describe_instance_types(std::slice::from_ref(name))
                .await
            {
                Ok(infos) => out.push(infos.into_iter().find(|i| &i.name == name)),
                Err(CloudError::UnknownInstanceType { .. }) => out.push(None),
                Err(e) => {
                    return Err(CommandError::Internal(format!(
                        "asking EC2 for the limits of {name} (ec2:DescribeInstanceTypes): {e}"
                    )));
                }
            }
        }
        Ok(out)
    })
}
