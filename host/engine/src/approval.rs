//! The rules of approvals, in one place for every client (the CLI, the API,
//! the web page): who may decide one, and what the decisions so far make of
//! it. The store only persists what these rules decide.

use crate::playbook::OnTimeout;

/// Someone deciding: a user and the groups they belong to (from `[users]`).
#[derive(Debug, Clone, Copy)]
pub struct Decider<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
}

impl Decider<'_> {
    /// Whether the approvers (user and group names) include this person,
    /// directly or through a group.
    pub fn may_decide(&self, approvers: &[String]) -> bool {
        approvers
            .iter()
            .any(|a| a == self.user || self.groups.contains(a))
    }
}

/// How an approval ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Rejected => "rejected",
        }
    }

    /// What an approval nobody decided in time becomes.
    pub fn on_timeout(on_timeout: OnTimeout) -> Outcome {
        match on_timeout {
            OnTimeout::Approve => Outcome::Approved,
            OnTimeout::Reject => Outcome::Rejected,
        }
    }
}

/// What the decisions so far (`true` approves) make of an approval that needs
/// `required` approvals: one rejection rejects it; `required` distinct
/// approvals approve it; else it stays pending (`None`).
pub fn tally(required: u32, decisions: &[bool]) -> Option<Outcome> {
    if decisions.iter().any(|approve| !approve) {
        return Some(Outcome::Rejected);
    }
    let approvals = decisions.len();
    (approvals >= required.max(1) as usize).then_some(Outcome::Approved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_decide() {
        let groups = ["soc-leads".to_owned()];
        let alice = Decider {
            user: "alice",
            groups: &groups,
        };
        let bob = Decider {
            user: "bob",
            groups: &[],
        };
        for (approvers, alice_may, bob_may) in [
            (vec!["alice"], true, false),
            (vec!["soc-leads"], true, false),
            (vec!["bob", "soc-leads"], true, true),
            (vec!["carol"], false, false),
            (vec![], false, false),
        ] {
            let approvers: Vec<String> = approvers.into_iter().map(str::to_owned).collect();
            assert_eq!(alice.may_decide(&approvers), alice_may, "{approvers:?}");
            assert_eq!(bob.may_decide(&approvers), bob_may, "{approvers:?}");
        }
    }

    #[test]
    fn the_tally() {
        use Outcome::*;
        for (required, decisions, expected) in [
            (1, &[][..], None),
            (1, &[true][..], Some(Approved)),
            (2, &[true][..], None),
            (2, &[true, true][..], Some(Approved)),
            (2, &[true, false][..], Some(Rejected)),
            (3, &[false][..], Some(Rejected)),
            (0, &[true][..], Some(Approved)),
        ] {
            assert_eq!(
                tally(required, decisions),
                expected,
                "{required} {decisions:?}"
            );
        }
        assert_eq!(Outcome::on_timeout(OnTimeout::Approve), Approved);
        assert_eq!(Outcome::on_timeout(OnTimeout::Reject).as_str(), "rejected");
    }
}
