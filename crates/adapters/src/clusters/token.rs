//! The EKS bearer token, as `aws eks get-token` makes it: a presigned STS `GetCallerIdentity`
//! URL (SigV4 query-string signing, the `x-k8s-aws-id: <cluster>` header signed so the token is
//! bound to one cluster), base64url without padding, prefixed `k8s-aws-v1.`. The API server's
//! authenticator replays the URL against STS to learn the caller's IAM identity.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The token prefix EKS expects.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The header naming the cluster, signed into the URL.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// `X-Amz-Expires` of the presigned URL, as the AWS CLI sets it. EKS accepts a token for 15
/// minutes from its signing time regardless; see [`super::TOKEN_REFRESH`].
pub const URL_EXPIRES: Duration = Duration::from_secs(60);

/// The token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid SigV4 signing parameters")]
    Params(#[source] v4::signing_params::BuildError),
    #[error("SigV4 signing failed")]
    Sign(#[source] aws_sigv4::http_request::SigningError),
    #[error("the presigned STS URL is not a valid request")]
    Http(#[source] http::Error),
}

/// The regional STS endpoint (`sts.<region>.amazonaws.com`, `.com.cn` in the China partition).
pub fn sts_host(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("sts.{region}.{suffix}")
}

/// The presigned `GetCallerIdentity` URL for `cluster`, signed at `now`.
pub fn presigned_url(
    cluster: &str,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<String, TokenError> {
    let url = format!(
        "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_host(region)
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(TokenError::Params)?
        .into();
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        [(CLUSTER_ID_HEADER, cluster)].into_iter(),
        SignableBody::empty(),
    )
    .map_err(TokenError::Sign)?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(TokenError::Sign)?
        .into_parts();
    let mut http_request = http::Request::get(url.as_str())
        .body(())
        .map_err(TokenError::Http)?;
    instructions.apply_to_request_http1x(&mut http_request);
    Ok(http_request.uri().to_string())
}

/// The bearer token for `cluster`, signed at `now`.
pub fn eks_token(
    cluster: &str,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<String, TokenError> {
    let url = presigned_url(cluster, region, credentials, now)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session/token+x".into()),
            None,
            "test",
        )
    }

    /// 2024-01-01T00:00:00Z.
    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200)
    }

    fn decode(token: &str) -> String {
        let b64 = token.strip_prefix(TOKEN_PREFIX).expect("prefix");
        String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(b64)
                .expect("base64url without padding"),
        )
        .unwrap()
    }

    #[test]
    fn the_token_is_a_prefixed_base64url_presigned_sts_url() {
        let token = eks_token("prod", "eu-west-1", &creds(), at()).unwrap();
        assert!(token.starts_with("k8s-aws-v1."));
        assert!(
            !token.contains(['=', '+', '/']),
            "url-safe, unpadded: {token}"
        );
        let url = decode(&token);
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://sts.eu-west-1.amazonaws.com/");
        let params: Vec<&str> = query.split('&').collect();
        for expected in [
            "Action=GetCallerIdentity",
            "Version=2011-06-15",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20240101%2Feu-west-1%2Fsts%2Faws4_request",
            "X-Amz-Date=20240101T000000Z",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-Security-Token=session%2Ftoken%2Bx",
        ] {
            assert!(params.contains(&expected), "{expected} missing from {url}");
        }
        let signature = params
            .iter()
            .find_map(|p| p.strip_prefix("X-Amz-Signature="))
            .expect("signature");
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn the_signature_binds_the_cluster_and_the_time() {
        let sig = |cluster, now| {
            let url = presigned_url(cluster, "us-east-1", &creds(), now).unwrap();
            url.split("X-Amz-Signature=").nth(1).unwrap().to_owned()
        };
        assert_eq!(sig("prod", at()), sig("prod", at()), "deterministic");
        assert_ne!(
            sig("prod", at()),
            sig("staging", at()),
            "x-k8s-aws-id is signed"
        );
        assert_ne!(
            sig("prod", at()),
            sig("prod", at() + Duration::from_secs(1))
        );
    }

    #[test]
    fn china_regions_use_their_partition() {
        assert_eq!(sts_host("cn-north-1"), "sts.cn-north-1.amazonaws.com.cn");
        assert_eq!(sts_host("us-east-1"), "sts.us-east-1.amazonaws.com");
    }
}
